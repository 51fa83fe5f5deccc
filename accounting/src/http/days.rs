//! `/api/accounting/billing-days`: closing days on demand, and the payout emails.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{CorrelationId, Json, Path, Result};
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::closing::{self, Closed};
use crate::state::AppState;

/// Closes a billing day now (admins): pays out every positive balance and emails each payee.
/// Earlier open days are closed first, in order. Closing a closed day returns the same result;
/// a day before the ledger's first transaction pays nothing and closes nothing.
#[utoipa::path(post, path = "/api/accounting/billing-days/{date}/close", tag = "accounting", security(("bearer" = [])),
    params(("date" = NaiveDate, Path, description = "The billing day, YYYY-MM-DD")),
    responses(
        (status = 200, description = "The day is closed", body = Closed),
        (status = 403, description = "Not an admin"),
        (status = 422, description = "A day that has not begun, or more than a year back"),
    ))]
#[tracing::instrument(skip_all, fields(%date))]
pub async fn close(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    Path(date): Path<NaiveDate>,
) -> Result<Json<Closed>> {
    caller.require(&[Role::Admin])?;
    let date = ates_web::check_date("date", date)?;
    Ok(Json(closing::close_through(&state.pool, date, state.zone, correlation.0).await?))
}

/// A payout email, queued or sent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayoutEmail {
    pub transaction_id: Uuid,
    pub account_id: Uuid,
    pub billing_date: NaiveDate,
    /// Cents paid out.
    pub amount: i64,
    /// Known once `accounts.created` has arrived.
    pub email: Option<String>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// The payout emails, newest first (admins and accountants).
#[utoipa::path(get, path = "/api/accounting/payout-emails", tag = "accounting", security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued and sent payout emails", body = Vec<PayoutEmail>),
        (status = 403, description = "Not an admin or accountant"),
    ))]
pub async fn payout_emails(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<PayoutEmail>>> {
    caller.require(&[Role::Admin, Role::Accountant])?;
    let emails = sqlx::query_as!(
        PayoutEmail,
        "SELECT p.transaction_id, p.account_id, p.billing_date, p.amount, coalesce(p.sent_to, a.email) AS email,
                p.attempts, p.last_error, p.sent_at
         FROM payout_emails p LEFT JOIN accounts a USING (account_id)
         ORDER BY p.billing_date DESC, p.queued_at DESC LIMIT 500",
    )
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(emails))
}
