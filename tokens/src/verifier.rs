//! Verifying an access token against the keyring.

use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

use crate::{Claims, Keyring, TokenError};

/// Seconds of clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 5;

/// The longest an access token may live (`exp - iat`): a token claiming more was not issued by
/// aTES auth, whatever its signature says.
pub const MAX_LIFETIME_SECS: i64 = 15 * 60;

/// Who issues tokens and for whom.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// The `iss` auth writes and services expect.
    pub issuer: String,
    /// The `aud` auth writes and services expect.
    pub audience: String,
}

/// Checks signature, algorithm, lifetime, issuer and audience of access tokens.
pub struct Verifier {
    keyring: Keyring,
    validation: Validation,
    verified: quick_cache::sync::Cache<String, Arc<Verified>>,
}

/// How many verified tokens a verifier remembers.
const VERIFIED_TOKENS: usize = 4_096;

/// A token that passed every check, and the key its signature was checked with.
struct Verified {
    kid: String,
    key: Vec<u8>,
    claims: Claims,
}

impl Verifier {
    /// A verifier using `keyring` and expecting `settings`.
    pub fn new(keyring: Keyring, settings: &TokenSettings) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        Verifier { keyring, validation, verified: quick_cache::sync::Cache::new(VERIFIED_TOKENS) }
    }

    /// The claims of `token` if it is a valid, current access token.
    ///
    /// A token shown again (a client keeps one for up to 15 minutes) is not checked again
    /// byte for byte: its signature stands as long as its key is still the keyring's for its
    /// `kid` (so a retired key stops verifying within the JWKS TTL, as before), and only its
    /// expiry is checked anew.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(seen) = self.verified.get(token) {
            let key = self.keyring.key(&seen.kid).await?;
            if key.try_get_as_bytes().is_ok_and(|current| current == seen.key.as_slice()) {
                return unexpired(&seen.claims);
            }
            self.verified.remove(token);
        }
        let (kid, key, claims) = self.check(token).await?;
        if let Ok(key) = key.try_get_as_bytes() {
            let seen = Verified { kid, key: key.to_vec(), claims: claims.clone() };
            self.verified.insert(token.to_owned(), Arc::new(seen));
        }
        Ok(claims)
    }

    /// Every check of `token`, signature included: its `kid`, the key that verified it and its
    /// claims.
    async fn check(&self, token: &str) -> Result<(String, DecodingKey, Claims), TokenError> {
        let header = decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Malformed(format!("the {:?} algorithm is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| TokenError::Malformed("no key id in the header".into()))?;
        let key = self.keyring.key(&kid).await?;
        let data = decode::<Claims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => TokenError::Expired,
            ErrorKind::InvalidIssuer | ErrorKind::InvalidAudience => TokenError::WrongIssuerOrAudience,
            _ => TokenError::Malformed(e.to_string()),
        })?;
        let claims = data.claims;
        if claims.exp - claims.iat > MAX_LIFETIME_SECS + leeway() {
            return Err(TokenError::Malformed("it claims to live longer than 15 minutes".into()));
        }
        if claims.iat > chrono::Utc::now().timestamp() + leeway() {
            return Err(TokenError::Malformed("it claims to be issued in the future".into()));
        }
        Ok((kid, key, claims))
    }
}

fn leeway() -> i64 {
    i64::try_from(LEEWAY_SECS).unwrap_or(0)
}

/// `claims` unless they have expired since they were verified (`nbf` and `iat` only ever pass
/// once they have).
fn unexpired(claims: &Claims) -> Result<Claims, TokenError> {
    if claims.exp < chrono::Utc::now().timestamp() - leeway() {
        return Err(TokenError::Expired);
    }
    Ok(claims.clone())
}

/// Token settings of a service, read from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenConfig {
    /// The `iss` of access tokens.
    #[arg(long, env = "ATES_TOKEN_ISSUER", default_value = "ates-auth")]
    pub issuer: String,
    /// The `aud` of access tokens.
    #[arg(long, env = "ATES_TOKEN_AUDIENCE", default_value = "ates")]
    pub audience: String,
    /// Where auth publishes its keys.
    #[arg(long, env = "ATES_JWKS_URL", default_value = "http://127.0.0.1:8081/.well-known/jwks.json")]
    pub jwks_url: String,
    /// How long fetched keys are trusted before the JWKS is read again: a key auth retires in
    /// an emergency stops verifying within this.
    #[arg(long, env = "ATES_JWKS_TTL", default_value = "2m", value_parser = humantime::parse_duration)]
    pub jwks_ttl: std::time::Duration,
}

impl TokenConfig {
    /// What tokens must say.
    pub fn settings(&self) -> TokenSettings {
        TokenSettings { issuer: self.issuer.clone(), audience: self.audience.clone() }
    }

    /// A verifier that fetches auth's JWKS over HTTP, at most once a second.
    pub fn verifier(&self) -> Verifier {
        let keyring = crate::Keyring::new(
            crate::HttpKeySource::new(&self.jwks_url),
            std::time::Duration::from_secs(1),
            self.jwks_ttl,
        );
        Verifier::new(keyring, &self.settings())
    }
}
