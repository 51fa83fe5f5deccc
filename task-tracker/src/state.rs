//! What every task tracker handler can reach.

use ates_tokens::Authenticator;
use axum::extract::FromRef;
use sqlx::PgPool;

/// The state of the task tracker's router.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Its connections, for the operations view.
    pub backbone: ates_messaging::Backbone,
    pub authenticator: Authenticator,
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
