//! What every accounting handler can reach.

use std::time::Duration;

use ates_tokens::Authenticator;
use axum::extract::FromRef;
use chrono::NaiveDate;
use chrono_tz::Tz;
use sqlx::PgPool;

/// The state of accounting's router.
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub authenticator: Authenticator,
    pub zone: Tz,
    pub outbox_retention: Duration,
}

impl AppState {
    /// Today in the company's time zone.
    pub fn today(&self) -> NaiveDate {
        crate::domain::calendar::business_date(chrono::Utc::now(), self.zone)
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}
