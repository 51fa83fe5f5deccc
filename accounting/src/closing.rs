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
use crate::ledger::{OUTBOX, post};
use crate::{Error, Result};

/// What closing a day did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// The earliest day [`close_through`] accepts when today is `today`: a year back.
pub fn earliest_closable(today: NaiveDate) -> NaiveDate {
    today.checked_sub_months(Months::new(12)).expect("dates go back")
}

/// Closes `date` and, first, every earlier day still open, in order, one transaction each.
/// Returns what closing `date` did; a day closed before returns its result unchanged, and a day
/// before the ledger's first activity returns that nothing was paid, without closing anything.
/// A day not begun yet is [`Error::NotBegun`], one more than a year back [`Error::TooOld`].
/// Every event of the close (payouts, their emails, `billing_day_closed`) carries `correlation`:
/// the request's id, or the scheduled run's own.
pub async fn close_through(pool: &PgPool, date: NaiveDate, zone: Tz, correlation: Uuid) -> Result<Closed> {
    let today = calendar::business_date(Utc::now(), zone);
    if date > today {
        return Err(Error::NotBegun(date));
    }
    let earliest = earliest_closable(today);
    if date < earliest {
        return Err(Error::TooOld { date, earliest });
    }
    loop {
        let mut tx = pool.begin().await?;
        // Exclusive: waits for postings in flight, and holds new ones until the close commits.
        let last_closed = sqlx::query_scalar!("SELECT last_closed FROM billing_state FOR UPDATE")
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
        let closed = close_one(&mut tx, next, zone, correlation).await?;
        tx.commit().await?;
        tracing::info!(correlation_id = %correlation, billing_date = %next, accounts_paid = closed.accounts_paid, total_paid = closed.total_paid, "closed a billing day");
        if next == date {
            return Ok(closed);
        }
    }
}

/// The result of a day that was closed (or skipped over) before.
async fn closed_result(tx: &mut PgConnection, date: NaiveDate) -> Result<Option<Closed>> {
    let closed = sqlx::query_as!(
        Closed,
        "SELECT billing_date, closed_at, accounts_paid, total_paid, management_earnings
         FROM billing_days WHERE billing_date = $1",
        date,
    )
    .fetch_optional(tx)
    .await?;
    Ok(closed)
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

/// The billing day of the ledger's first transaction, if there is one.
async fn first_active_day(tx: &mut PgConnection) -> Result<Option<NaiveDate>> {
    Ok(sqlx::query_scalar!("SELECT min(billing_date) FROM transactions").fetch_one(tx).await?)
}

/// A popug with entries billed on a day.
struct DayActivity {
    account_id: Uuid,
    /// The balance it closed the previous day with.
    closed_balance: i64,
    /// The sum of its entries billed on the day.
    net: i64,
}

/// Each popug with entries billed on `day`. Entries billed to later days are in neither number.
async fn day_activity(tx: &mut PgConnection, day: NaiveDate) -> Result<Vec<DayActivity>> {
    let activity = sqlx::query_as!(
        DayActivity,
        r#"SELECT b.account_id, b.closed_balance, d.net AS "net!"
         FROM (SELECT account_id, sum(amount)::bigint AS net FROM transactions
               WHERE billing_date = $1 GROUP BY account_id) d
         JOIN balances b USING (account_id)
         WHERE b.account_id <> $2
         ORDER BY b.account_id"#,
        day,
        COMPANY,
    )
    .fetch_all(tx)
    .await?;
    Ok(activity)
}

/// Pays out every positive closing balance of `day`, queues one email per payout, records the
/// close and writes `accounting.billing_day_closed`.
async fn close_one(tx: &mut PgConnection, day: NaiveDate, zone: Tz, correlation: Uuid) -> Result<Closed> {
    let now = Utc::now();
    let payouts: Vec<Posting> = day_activity(tx, day)
        .await?
        .into_iter()
        .filter_map(|DayActivity { account_id, closed_balance, net }| {
            let paid = payout::day_end(closed_balance, net).payout;
            (paid > 0).then(|| Posting {
                transaction_id: transaction_id(TransactionKind::Payout, &format!("{account_id}:{day}")),
                account_id,
                kind: TransactionKind::Payout,
                amount: -paid,
                task_id: None,
                business_time: now,
                cause_event_id: transaction_id(TransactionKind::Payout, &format!("close:{day}")),
                correlation_id: Some(correlation),
            })
        })
        .collect();
    let posted = post(tx, payouts, zone, Some(day)).await?;
    // The day is settled: every popug's account now carries the sum of its entries (its
    // transactions) billed on or before it, which after the payouts is zero or a debt.
    sqlx::query!(
        "UPDATE balances b SET closed_balance = b.closed_balance + d.net
         FROM (SELECT account_id, sum(amount)::bigint AS net
               FROM transactions WHERE billing_date = $1 GROUP BY account_id) d
         WHERE b.account_id = d.account_id",
        day,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO payout_emails (transaction_id, account_id, billing_date, amount, message_id, correlation_id)
         SELECT id, account, $4, -amount, '<payout-' || id || '@ates>', $5
         FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS p(id, account, amount)",
        &posted.iter().map(|p| p.posting.transaction_id).collect::<Vec<_>>(),
        &posted.iter().map(|p| p.posting.account_id).collect::<Vec<_>>(),
        &posted.iter().map(|p| p.posting.amount).collect::<Vec<_>>(),
        day,
        correlation,
    )
    .execute(&mut *tx)
    .await?;
    let totals = sqlx::query!(
        r#"SELECT coalesce(sum(assign_fees), 0)::bigint AS "fees!", coalesce(sum(completion_rewards), 0)::bigint AS "rewards!"
         FROM daily_totals WHERE billing_date = $1"#,
        day,
    )
    .fetch_one(&mut *tx)
    .await?;
    let (fees, rewards) = (totals.fees, totals.rewards);
    let closed = sqlx::query_as!(
        Closed,
        "INSERT INTO billing_days (billing_date, accounts_paid, total_paid, management_earnings)
         VALUES ($1, $2, $3, $4)
         RETURNING billing_date, closed_at, accounts_paid, total_paid, management_earnings",
        day,
        i64::try_from(posted.len()).expect("fits"),
        -posted.iter().map(|p| p.posting.amount).sum::<i64>(),
        -(fees + rewards),
    )
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query!("UPDATE billing_state SET last_closed = $1", day).execute(&mut *tx).await?;
    let event = BillingDayClosedV1 {
        billing_date: day,
        accounts_paid: closed.accounts_paid,
        total_paid: closed.total_paid,
        management_earnings: closed.management_earnings,
    };
    OUTBOX.add_all(tx, &[Envelope::new(OUTBOX.producer(), event).correlated(Some(correlation))]).await?;
    Ok(closed)
}

/// Closes every day that has ended in `zone`: the scheduled job, and the catch-up at start-up.
/// Does nothing while the ledger is empty.
/// The run has a correlation id of its own, in its log lines and on its events.
pub async fn close_ended_days(pool: &PgPool, zone: Tz) -> Result<Option<Closed>> {
    let yesterday = calendar::business_date(Utc::now(), zone).pred_opt().expect("dates go back");
    let due = closed_through_day(pool).await?.is_some_and(|closed| closed < yesterday);
    if !due {
        return Ok(None);
    }
    close_through(pool, yesterday, zone, Uuid::now_v7()).await.map(Some)
}

/// The last day that counts as closed ([`calendar::closed_through`]).
pub async fn closed_through_day(pool: &PgPool) -> Result<Option<NaiveDate>> {
    let ledger = sqlx::query!(
        "SELECT (SELECT last_closed FROM billing_state) AS last_closed,
                (SELECT min(billing_date) FROM transactions) AS first_active",
    )
    .fetch_one(pool)
    .await?;
    Ok(calendar::closed_through(ledger.last_closed, ledger.first_active))
}

/// Days from the last closed day to today in `zone`: the `ates_billing_last_closed_day_age_days`
/// gauge.
pub async fn last_closed_day_age(pool: &PgPool, zone: Tz) -> Result<i64> {
    let today = calendar::business_date(Utc::now(), zone);
    Ok(calendar::days_since_close(today, closed_through_day(pool).await?))
}
