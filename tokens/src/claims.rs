//! The claims of an aTES access token.

use ates_schemas::events::Role;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What an access token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: Uuid,
    /// The account's role when the token was issued.
    pub role: Role,
    /// Who issued it.
    pub iss: String,
    /// Who it is for.
    pub aud: String,
    /// Issued at, in seconds since the epoch.
    pub iat: i64,
    /// Not valid before, in seconds.
    pub nbf: i64,
    /// Expires at, in seconds.
    pub exp: i64,
    /// A unique token id.
    pub jti: Uuid,
    /// Issued at, in milliseconds: a role change in the same second as the token must still
    /// be told apart from it.
    pub iat_ms: i64,
}

impl Claims {
    /// When the token was issued, to the millisecond.
    pub fn issued_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.iat_ms).unwrap_or(DateTime::UNIX_EPOCH)
    }
}
