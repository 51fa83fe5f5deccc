//! What every analytics handler can reach.

use ates_tokens::Authenticator;
use axum::extract::FromRef;
use chrono::NaiveDate;
use chrono_tz::Tz;
use sqlx::PgPool;

/// The state of analytics' router.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// Its connections, for the operations view.
    pub backbone: ates_messaging::Backbone,
    pub authenticator: Authenticator,
    pub zone: Tz,
}

impl AppState {
    /// Today in the company's time zone.
    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now().with_timezone(&self.zone).date_naive()
    }
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
