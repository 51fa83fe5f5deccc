//! `/api/accounting/dashboard` and the invariant check.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{Json, Query, Result};
use axum::extract::State;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::invariants::{self, Report};
use crate::state::AppState;
use crate::statements::{self, DayTotals};

/// The longest range the dashboard shows at once.
const MAX_DAYS: i64 = 366;

/// Which days to show.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// First day, `YYYY-MM-DD`; 29 days before `to` by default.
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD`; today by default.
    to: Option<NaiveDate>,
}

/// Management earnings, fees, rewards and payouts per day (admins and accountants).
#[utoipa::path(get, path = "/api/accounting/dashboard", tag = "accounting", security(("bearer" = [])), params(RangeQuery),
    responses(
        (status = 200, description = "One entry per day, oldest first", body = Vec<DayTotals>),
        (status = 400, description = "A bad range"),
        (status = 403, description = "Not an admin or accountant"),
    ))]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: Caller,
    Query(range): Query<RangeQuery>,
) -> Result<Json<Vec<DayTotals>>> {
    caller.require(&[Role::Admin, Role::Accountant])?;
    let to = range.to.unwrap_or_else(|| state.today());
    let from = range.from.unwrap_or(to - chrono::Duration::days(29));
    let (from, to) = ates_web::date_range(from, to, MAX_DAYS)?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(statements::dashboard(&mut conn, from, to).await?))
}

/// Checks the ledger's invariants (admins).
#[utoipa::path(get, path = "/api/accounting/invariants", tag = "accounting", security(("bearer" = [])),
    responses(
        (status = 200, description = "What the check found", body = Report),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn invariants(State(state): State<AppState>, caller: Caller) -> Result<Json<Report>> {
    caller.require(&[Role::Admin])?;
    Ok(Json(invariants::check(&state.pool, state.outbox_retention).await?))
}
