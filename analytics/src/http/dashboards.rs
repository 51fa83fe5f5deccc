//! `/api/analytics/*`: admins only.

use ates_messaging::projection;
use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{Json, Problem, Query, Result};
use axum::extract::State;
use chrono::{Duration, NaiveDate};
use serde::Deserialize;

use crate::domain::periods;
use crate::queries::{self, Day, ExpensiveTask, Summary};
use crate::state::AppState;

/// The longest history asked for at once.
const MAX_DAYS: i64 = 366;

/// Which day.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DateQuery {
    /// `YYYY-MM-DD`; today by default.
    date: Option<NaiveDate>,
}

/// Management earnings and how many popugs are negative, today or on a day.
#[utoipa::path(get, path = "/api/analytics/summary", tag = "analytics", security(("bearer" = [])), params(DateQuery),
    responses(
        (status = 200, description = "The day's figures", body = Summary),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DateQuery>,
) -> Result<Json<Summary>> {
    caller.require(&[Role::Admin])?;
    let date = ates_web::check_date("date", query.date.unwrap_or_else(|| state.today()))?;
    let (mut tx, generation) = projection::read_current(&state.pool).await?;
    Ok(Json(queries::summary(&mut tx, generation, date).await?))
}

/// A period: `from`–`to`, or a `period` around `date`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PeriodQuery {
    /// First day, `YYYY-MM-DD`.
    from: Option<NaiveDate>,
    /// Last day, `YYYY-MM-DD`.
    to: Option<NaiveDate>,
    /// Instead of `from`/`to`: the `day`, the `week` (Monday to Sunday) or the `month` of `date`.
    #[param(inline)]
    period: Option<Period>,
    /// The day the period is around; today by default.
    date: Option<NaiveDate>,
}

/// A calendar period.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Week,
    Month,
}

impl PeriodQuery {
    /// The first and last day asked for.
    fn range(&self, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), Problem> {
        let date = ates_web::check_date("date", self.date.unwrap_or(today))?;
        let (from, to) = match (self.period, self.from, self.to) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(Problem::bad_request(
                    "Give either `period` (with `date`) or `from` and `to`, not both.",
                ));
            }
            (Some(Period::Day), ..) | (None, None, None) => (date, date),
            (Some(Period::Week), ..) => periods::week_of(date),
            (Some(Period::Month), ..) => periods::month_of(date),
            (None, from, to) => (from.unwrap_or(date), to.unwrap_or(date)),
        };
        ates_web::date_range(from, to, MAX_DAYS)
    }
}

/// The task with the highest completion reward among tasks completed in a period.
#[utoipa::path(get, path = "/api/analytics/most-expensive-task", tag = "analytics", security(("bearer" = [])), params(PeriodQuery),
    responses(
        (status = 200, description = "The most expensive task", body = ExpensiveTask),
        (status = 400, description = "A bad period"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No task was completed in the period"),
    ))]
pub async fn most_expensive_task(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<ExpensiveTask>> {
    caller.require(&[Role::Admin])?;
    let (from, to) = query.range(state.today())?;
    let (mut tx, generation) = projection::read_current(&state.pool).await?;
    Ok(Json(queries::most_expensive(&mut tx, generation, from, to).await?))
}

/// Per-day history: earnings, negative popugs and the most expensive task of each day.
#[utoipa::path(get, path = "/api/analytics/days", tag = "analytics", security(("bearer" = [])), params(PeriodQuery),
    responses(
        (status = 200, description = "One entry per day, oldest first", body = Vec<Day>),
        (status = 400, description = "A bad period"),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn days(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<PeriodQuery>,
) -> Result<Json<Vec<Day>>> {
    caller.require(&[Role::Admin])?;
    let today = state.today();
    let query = if query.period.is_none() && query.from.is_none() && query.to.is_none() {
        PeriodQuery { from: Some(today - Duration::days(29)), to: Some(today), ..query }
    } else {
        query
    };
    let (from, to) = query.range(today)?;
    let (mut tx, generation) = projection::read_current(&state.pool).await?;
    Ok(Json(queries::days(&mut tx, generation, from, to).await?))
}
