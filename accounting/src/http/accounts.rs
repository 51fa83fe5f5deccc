//! `/api/accounting/me` and `/api/accounting/accounts`: balances and audit logs.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{Json, Path, Problem, Query, Result};
use axum::extract::State;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::state::AppState;
use crate::statements::{self, AccountBalance, Statement};

/// Which day's transactions to show.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DayQuery {
    /// A billing day, `YYYY-MM-DD`; today (in the company's time zone) by default.
    date: Option<NaiveDate>,
}

/// The caller's balance and audit log of a day.
#[utoipa::path(get, path = "/api/accounting/me", tag = "accounting", security(("bearer" = [])), params(DayQuery),
    responses(
        (status = 200, description = "Balance and the day's transactions", body = Statement),
        (status = 401, description = "Not signed in"),
    ))]
pub async fn me(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<DayQuery>,
) -> Result<Json<Statement>> {
    statement(&state, caller.account_id, query).await
}

/// Every account with its balance.
#[derive(Serialize, utoipa::ToSchema)]
pub struct BalanceList {
    items: Vec<AccountBalance>,
}

/// Every account and its balance (admins and accountants).
#[utoipa::path(get, path = "/api/accounting/accounts", tag = "accounting", security(("bearer" = [])),
    responses(
        (status = 200, description = "Accounts and balances", body = BalanceList),
        (status = 403, description = "Not an admin or accountant"),
    ))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<BalanceList>> {
    caller.require(&[Role::Admin, Role::Accountant])?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(BalanceList { items: statements::accounts(&mut conn).await? }))
}

/// One account's balance and audit log of a day: admins and accountants see any, others only
/// their own.
#[utoipa::path(get, path = "/api/accounting/accounts/{account_id}", tag = "accounting", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "The account"), DayQuery),
    responses(
        (status = 200, description = "Balance and the day's transactions", body = Statement),
        (status = 403, description = "Someone else's account"),
    ))]
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<Uuid>,
    Query(query): Query<DayQuery>,
) -> Result<Json<Statement>> {
    if account_id != caller.account_id && !matches!(caller.role, Role::Admin | Role::Accountant) {
        return Err(Problem::forbidden("You can see only your own account.").into());
    }
    statement(&state, account_id, query).await
}

/// `account`'s statement of the day asked for, every figure of it from one moment.
async fn statement(state: &AppState, account: Uuid, query: DayQuery) -> Result<Json<Statement>> {
    let date = ates_web::check_date("date", query.date.unwrap_or_else(|| state.today()))?;
    let mut tx = ates_messaging::db::begin_snapshot(&state.pool).await?;
    let statement = statements::statement(&mut tx, account, date).await?;
    tx.commit().await?;
    Ok(Json(statement))
}
