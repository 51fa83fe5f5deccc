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
    /// Its connections, for the operations view.
    pub backbone: ates_messaging::Backbone,
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

impl ates_messaging::ops::OpsState for AppState {
    fn backbone(&self) -> &ates_messaging::Backbone {
        &self.backbone
    }

    async fn operations(&self) -> ates_web::Result<ates_messaging::ops::Operations> {
        let mut view = self.backbone.operations().await;
        view.last_closed_day = crate::closing::closed_through_day(&self.pool).await?;
        Ok(view)
    }
}
