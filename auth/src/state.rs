//! What every auth handler can reach.

use std::sync::Arc;

use ates_tokens::{Authenticator, Claims, Freshness, TokenError};
use axum::extract::FromRef;
use futures::future::BoxFuture;
use sqlx::PgPool;

use crate::keys::DbKeySource;
use crate::limiter::LoginLimiter;
use crate::sessions::Sessions;

/// The state of auth's router.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub sessions: Arc<Sessions>,
    pub jwks: DbKeySource,
    pub authenticator: Authenticator,
    pub limiter: Arc<LoginLimiter>,
    pub trust_forwarded_for: bool,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

/// Auth knows the current state of every account: a token whose account has since been
/// deactivated, deleted or given another role is outdated.
pub struct CurrentAccounts {
    pub pool: PgPool,
}

impl Freshness for CurrentAccounts {
    fn check<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let row: Option<(String, bool)> =
                sqlx::query_as("SELECT role, active FROM accounts WHERE account_id = $1")
                    .bind(claims.sub)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(|e| TokenError::Unavailable(e.to_string()))?;
            match row {
                None => Err(TokenError::Outdated("the account no longer exists")),
                Some((_, false)) => Err(TokenError::Outdated("the account has been deactivated")),
                Some((role, true)) if role != claims.role.as_str() => {
                    Err(TokenError::Outdated("the account's role changed after this token was issued"))
                }
                Some(_) => Ok(()),
            }
        })
    }
}
