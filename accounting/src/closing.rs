//! Closing billing days: every positive closing balance is paid out, negatives carry over.
//!
//! The closing balance of a day is the sum of an account's entries billed on or before it.
//! `balances.closed_balance` keeps that sum for the last closed day, so closing the next day
//! adds only that day's entries: whatever was already billed to a later day (an event just
//! after midnight, the backlog of a catch-up) stays on the account for its own day.

use chrono::{DateTime, Months, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use ates_schemas::Envelope;
use ates_schemas::events::{BillingDayClosedV1, TransactionKind};

use crate::domain::posting::{COMPANY, Posting, transaction_id};
use crate::domain::{calendar, payout};
use crate::ledger::{LedgerError, OUTBOX, post};

/// What closing a day did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Closed {
    pub billing_date: NaiveDate,
    pub closed_at: DateTime<Utc>,
    /// Accounts that got a payout.
    pub accounts_paid: i64,
    /// The sum of the payouts, in cents.
    pub total_paid: i64,
    /// Fees collected minus rewards paid that day, in cents.
    pub management_earnings: i64,
}

/// Why a day cannot be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseError {
    /// The day has not begun in the company's time zone.
    #[error("{0} has not begun yet; only days up to today can be closed")]
    Future(NaiveDate),
    /// The day is further back than anyone closes on demand.
    #[error("{date} is more than a year back; only days from {earliest} on can be closed on demand")]
    TooOld { date: NaiveDate, earliest: NaiveDate },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<sqlx::Error> for CloseError {
    fn from(error: sqlx::Error) -> Self {
        CloseError::Ledger(error.into())
    }
}

/// The earliest day [`close_through`] accepts when today is `today`: a year back.
pub fn earliest_closable(today: NaiveDate) -> NaiveDate {
    today.checked_sub_months(Months::new(12)).expect("dates go back")
}

/// Closes `date` and, first, every earlier day still open, in order, one transaction each.
/// Returns what closing `date` did; a day closed before returns its result unchanged, and a day
/// before the ledger's first activity returns that nothing was paid, without closing anything.
pub async fn close_through(pool: &PgPool, date: NaiveDate, zone: Tz) -> Result<Closed, CloseError> {
    let today = calendar::business_date(Utc::now(), zone);
    if date > today {
        return Err(CloseError::Future(date));
    }
    let earliest = earliest_closable(today);
    if date < earliest {
        return Err(CloseError::TooOld { date, earliest });
    }
    loop {
        let mut tx = pool.begin().await?;
        // Exclusive: waits for postings in flight, and holds new ones until the close commits.
        let last_closed: Option<NaiveDate> =
            sqlx::query_scalar("SELECT last_closed FROM billing_state FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        if last_closed.is_some_and(|closed| closed >= date) {
            return Ok(closed_result(&mut tx, date).await?.unwrap_or_else(|| never_active(date)));
        }
        let next = match last_closed {
            Some(closed) => closed.succ_opt().expect("dates go on"),
            None => match first_active_day(&mut tx).await? {
                Some(first) if first <= date => first,
                _ => return Ok(never_active(date)),
            },
        };
        let closed = close_one(&mut tx, next, zone).await?;
        tx.commit().await?;
        tracing::info!(billing_date = %next, accounts_paid = closed.accounts_paid, total_paid = closed.total_paid, "closed a billing day");
        if next == date {
            return Ok(closed);
        }
    }
}

/// The result of a day that was closed (or skipped over) before.
async fn closed_result(tx: &mut PgConnection, date: NaiveDate) -> Result<Option<Closed>, sqlx::Error> {
    sqlx::query_as(
        "SELECT billing_date, closed_at, accounts_paid, total_paid, management_earnings
         FROM billing_days WHERE billing_date = $1",
    )
    .bind(date)
    .fetch_optional(tx)
    .await
}

/// A day before the ledger's first transaction: nothing happened, nothing to pay.
fn never_active(date: NaiveDate) -> Closed {
    Closed {
        billing_date: date,
        closed_at: Utc::now(),
        accounts_paid: 0,
        total_paid: 0,
        management_earnings: 0,
    }
}

async fn first_active_day(tx: &mut PgConnection) -> Result<Option<NaiveDate>, sqlx::Error> {
    sqlx::query_scalar("SELECT min(billing_date) FROM transactions").fetch_one(tx).await
}

/// Each popug with entries billed on `day`: the balance it closed the previous day with, and
/// the sum of those entries. Entries billed to later days are in neither.
async fn day_activity(tx: &mut PgConnection, day: NaiveDate) -> Result<Vec<(Uuid, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.account_id, b.closed_balance, d.net
         FROM (SELECT account_id, sum(amount)::bigint AS net FROM transactions
               WHERE billing_date = $1 GROUP BY account_id) d
         JOIN balances b USING (account_id)
         WHERE b.account_id <> $2
         ORDER BY b.account_id",
    )
    .bind(day)
    .bind(COMPANY)
    .fetch_all(tx)
    .await
}

/// Pays out every positive closing balance of `day`, queues one email per payout, records the
/// close and writes `accounting.billing_day_closed`.
async fn close_one(tx: &mut PgConnection, day: NaiveDate, zone: Tz) -> Result<Closed, CloseError> {
    let now = Utc::now();
    let payouts: Vec<Posting> = day_activity(tx, day)
        .await?
        .into_iter()
        .filter_map(|(account_id, carried_in, day_net)| {
            let paid = payout::day_end(carried_in, day_net).payout;
            (paid > 0).then(|| Posting {
                transaction_id: transaction_id(TransactionKind::Payout, &format!("{account_id}:{day}")),
                account_id,
                kind: TransactionKind::Payout,
                amount: -paid,
                task_id: None,
                business_time: now,
                cause_event_id: transaction_id(TransactionKind::Payout, &format!("close:{day}")),
            })
        })
        .collect();
    let posted = post(tx, payouts, zone, Some(day)).await?;
    // The day is settled: every account (the company's too) now carries the sum of its entries
    // billed on or before it, which after the payouts is zero or a debt for every popug.
    sqlx::query(
        "UPDATE balances b SET closed_balance = b.closed_balance + d.net
         FROM (SELECT e.account_id, sum(e.amount)::bigint AS net
               FROM transactions t JOIN entries e USING (transaction_id)
               WHERE t.billing_date = $1 GROUP BY e.account_id) d
         WHERE b.account_id = d.account_id",
    )
    .bind(day)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO payout_emails (transaction_id, account_id, billing_date, amount, message_id)
         SELECT id, account, $4, -amount, '<payout-' || id || '@ates>'
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS p(id, account, amount)",
    )
    .bind(posted.iter().map(|p| p.posting.transaction_id).collect::<Vec<_>>())
    .bind(posted.iter().map(|p| p.posting.account_id).collect::<Vec<_>>())
    .bind(posted.iter().map(|p| p.posting.amount).collect::<Vec<_>>())
    .bind(day)
    .execute(&mut *tx)
    .await?;
    let (fees, rewards): (i64, i64) =
        sqlx::query_as("SELECT assign_fees, completion_rewards FROM daily_totals WHERE billing_date = $1")
            .bind(day)
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or_default();
    let closed: Closed = sqlx::query_as(
        "INSERT INTO billing_days (billing_date, accounts_paid, total_paid, management_earnings)
         VALUES ($1, $2, $3, $4)
         RETURNING billing_date, closed_at, accounts_paid, total_paid, management_earnings",
    )
    .bind(day)
    .bind(i64::try_from(posted.len()).expect("fits"))
    .bind(-posted.iter().map(|p| p.posting.amount).sum::<i64>())
    .bind(-(fees + rewards))
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("UPDATE billing_state SET last_closed = $1").bind(day).execute(&mut *tx).await?;
    let event = BillingDayClosedV1 {
        billing_date: day,
        accounts_paid: closed.accounts_paid,
        total_paid: closed.total_paid,
        management_earnings: closed.management_earnings,
    };
    OUTBOX.add_all(tx, &[Envelope::new(OUTBOX.producer(), event)]).await.map_err(LedgerError::from)?;
    Ok(closed)
}

/// Closes every day that has ended in `zone`: the scheduled job, and the catch-up at start-up.
/// Does nothing while the ledger is empty.
pub async fn close_ended_days(pool: &PgPool, zone: Tz) -> Result<Option<Closed>, CloseError> {
    let yesterday = calendar::business_date(Utc::now(), zone).pred_opt().expect("dates go back");
    let (last_closed, first): (Option<NaiveDate>, Option<NaiveDate>) = sqlx::query_as(
        "SELECT (SELECT last_closed FROM billing_state), (SELECT min(billing_date) FROM transactions)",
    )
    .fetch_one(pool)
    .await?;
    let due = match (last_closed, first) {
        (Some(closed), _) => closed < yesterday,
        (None, Some(first)) => first <= yesterday,
        (None, None) => false,
    };
    if !due {
        return Ok(None);
    }
    close_through(pool, yesterday, zone).await.map(Some)
}
