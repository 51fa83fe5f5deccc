//! Token checks against the replica: is what a token says about its account still true?

use ates_tokens::{Claims, Freshness, TokenError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::PgPool;

/// Refuses tokens the replica knows to be outdated: the account was deactivated, or its role
/// changed after the token was issued. An account the replica has not heard of yet is not
/// refused: the signature already proved the token came from auth.
#[derive(Clone)]
pub struct ReplicaFreshness {
    pool: PgPool,
}

impl ReplicaFreshness {
    /// Checks against the replica in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        ReplicaFreshness { pool }
    }
}

/// What the replica knows about a token's account.
struct Credentials {
    active: bool,
    /// Whether a full state (`accounts.created` or `accounts.updated`) has arrived; before
    /// that, `active` is only the column's default.
    state_known: bool,
    /// When the role last changed or the account was deactivated.
    credentials_changed_at: Option<DateTime<Utc>>,
}

impl Freshness for ReplicaFreshness {
    fn check<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let known = sqlx::query_as!(
                Credentials,
                r#"SELECT active, state_time IS NOT NULL AS "state_known!", credentials_changed_at
                   FROM accounts WHERE account_id = $1"#,
                claims.sub,
            )
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
            match known {
                Some(Credentials { active: false, state_known: true, .. }) => {
                    Err(TokenError::Outdated("the account has been deactivated"))
                }
                Some(Credentials { credentials_changed_at: Some(changed), .. })
                    if changed > claims.issued_at() =>
                {
                    Err(TokenError::Outdated("the account's role changed after this token was issued"))
                }
                _ => Ok(()),
            }
        })
    }
}
