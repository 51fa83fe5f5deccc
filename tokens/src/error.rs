//! Why a token is refused.

use ates_web::Problem;

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No `Authorization: Bearer` header.
    #[error("sign in first: this needs an `Authorization: Bearer <token>` header")]
    Missing,
    /// Not a JWT this service accepts (bad encoding, wrong algorithm, missing claims).
    #[error("the access token is not valid: {0}")]
    Malformed(String),
    /// Signed by a key auth does not publish.
    #[error("the access token is signed by an unknown key")]
    UnknownKey,
    /// The signature does not match.
    #[error("the access token's signature is invalid")]
    BadSignature,
    /// Expired, or not valid yet.
    #[error("the access token has expired; refresh it or sign in again")]
    Expired,
    /// Issued by someone else, or for another audience.
    #[error("the access token was not issued by aTES auth for aTES")]
    WrongIssuerOrAudience,
    /// Valid, but the account changed since.
    #[error("token outdated: {0}; sign in again")]
    Outdated(&'static str),
    /// The keys or the account replica cannot be read right now.
    #[error("cannot check the access token right now: {0}")]
    Unavailable(String),
}

impl From<TokenError> for Problem {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Unavailable(cause) => {
                tracing::warn!("token check unavailable: {cause}");
                Problem::unavailable("Cannot check the access token right now; please try again.")
            }
            other => Problem::unauthorized(sentence(&other.to_string())),
        }
    }
}

/// Capitalises and ends with a period.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}
