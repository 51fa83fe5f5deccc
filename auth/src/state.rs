//! What every auth handler can reach.

use std::sync::Arc;

use ates_tokens::Authenticator;
use axum::extract::FromRef;
use sqlx::PgPool;

use crate::keys::DbKeySource;
use crate::limiter::LoginLimiter;
use crate::sessions::Sessions;

/// The state of auth's router.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Its connections, for the operations view.
    pub backbone: ates_messaging::Backbone,
    pub sessions: Arc<Sessions>,
    pub jwks: DbKeySource,
    pub authenticator: Authenticator,
    pub limiter: Arc<LoginLimiter>,
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

impl ates_messaging::ops::OpsState for AppState {
    fn backbone(&self) -> &ates_messaging::Backbone {
        &self.backbone
    }
}
