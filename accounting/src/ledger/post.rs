//! Posting transactions: balances locked, ids checked, double entry written, events queued.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use ates_schemas::Envelope;
use ates_schemas::events::{TransactionAppliedV1, TransactionKind};
use chrono::NaiveDate;
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use super::OUTBOX;
use crate::Result;
use crate::domain::calendar;
use crate::domain::posting::{Posting, running_balances};

/// A transaction as it was posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub posting: Posting,
    pub balance_after: i64,
    pub billing_date: NaiveDate,
}

/// Posts the `postings` that were not posted before, in order, and returns them.
///
/// Postings whose transaction exists are dropped before anything is locked, so the balance locks
/// are not held while that is looked up. Two instances posting the same cause at once cannot both
/// post it: the second one's insert fails on the transaction's key once the first commits (its
/// batch is then applied again, and drops it). The balances of every popug involved are locked in
/// account order. Nothing every posting needs is locked: the company's side of the postings is
/// one entry of their journal (its balance is the sum of them), and the day's totals go to one of
/// [`TOTAL_SHARDS`] rows. Each posting is billed on its business date in
/// `zone`, or the earliest open day if that is closed, unless `billing_date` fixes the day.
pub async fn post(
    tx: &mut PgConnection,
    postings: Vec<Posting>,
    zone: Tz,
    billing_date: Option<NaiveDate>,
) -> Result<Vec<Posted>> {
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let last_closed =
        sqlx::query_scalar!("SELECT last_closed FROM billing_state FOR SHARE").fetch_one(&mut *tx).await?;
    let ids: Vec<Uuid> = postings.iter().map(|p| p.transaction_id).collect();
    let mut seen: HashSet<Uuid> =
        sqlx::query_scalar!("SELECT transaction_id FROM transactions WHERE transaction_id = ANY($1)", &ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .collect();
    let postings: Vec<Posting> = postings.into_iter().filter(|p| seen.insert(p.transaction_id)).collect();
    if postings.is_empty() {
        return Ok(Vec::new());
    }
    let accounts: Vec<Uuid> =
        postings.iter().map(|p| p.account_id).collect::<BTreeSet<_>>().into_iter().collect();
    sqlx::query!(
        "INSERT INTO balances (account_id) SELECT unnest($1::uuid[]) ON CONFLICT DO NOTHING",
        &accounts
    )
    .execute(&mut *tx)
    .await?;
    let mut balances: HashMap<Uuid, i64> = sqlx::query_as!(
        Balance,
        "SELECT account_id, balance FROM balances WHERE account_id = ANY($1) ORDER BY account_id FOR UPDATE",
        &accounts,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|b| (b.account_id, b.balance))
    .collect();
    let after = running_balances(&postings, &mut balances);
    let posted: Vec<Posted> = postings
        .into_iter()
        .zip(after)
        .map(|(posting, balance_after)| {
            let business = calendar::business_date(posting.business_time, zone);
            let day = billing_date.unwrap_or_else(|| calendar::billing_date(business, last_closed));
            Posted { posting, balance_after, billing_date: day }
        })
        .collect();
    write(tx, &posted, &balances).await?;
    Ok(posted)
}

/// An account's balance as locked for posting.
struct Balance {
    account_id: Uuid,
    balance: i64,
}

async fn write(tx: &mut PgConnection, posted: &[Posted], balances: &HashMap<Uuid, i64>) -> Result<()> {
    let events: Vec<Envelope<TransactionAppliedV1>> = posted
        .iter()
        .map(|p| {
            Envelope::new(
                OUTBOX.producer(),
                TransactionAppliedV1 {
                    transaction_id: p.posting.transaction_id,
                    account_id: p.posting.account_id,
                    kind: p.posting.kind,
                    amount: p.posting.amount,
                    balance_after: p.balance_after,
                    task_id: p.posting.task_id,
                    billing_date: p.billing_date,
                },
            )
            .correlated(p.posting.correlation_id)
        })
        .collect();
    let column = |f: fn(&Posted) -> Uuid| posted.iter().map(f).collect::<Vec<Uuid>>();
    let amounts: Vec<i64> = posted.iter().map(|p| p.posting.amount).collect();
    // Double entry: the company's side of the whole journal, then each popug's transaction (its
    // entry), the journal summing to zero.
    let journal = Uuid::now_v7();
    sqlx::query!(
        "INSERT INTO company_entries (journal_id, amount) VALUES ($1, $2)",
        journal,
        -amounts.iter().sum::<i64>()
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO transactions (transaction_id, account_id, kind, amount, balance_after, task_id,
                                   billing_date, business_time, cause_event_id, applied_event_id, journal_id)
         SELECT *, $11 FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::bigint[], $5::bigint[], $6::uuid[],
                                   $7::date[], $8::timestamptz[], $9::uuid[], $10::uuid[])",
        &column(|p| p.posting.transaction_id),
        &column(|p| p.posting.account_id),
        &posted.iter().map(|p| p.posting.kind.as_str()).collect::<Vec<_>>() as &[&str],
        &amounts,
        &posted.iter().map(|p| p.balance_after).collect::<Vec<_>>(),
        // Fees and rewards have a task, payouts none.
        &posted.iter().map(|p| p.posting.task_id).collect::<Vec<_>>() as &[Option<Uuid>],
        &posted.iter().map(|p| p.billing_date).collect::<Vec<_>>(),
        &posted.iter().map(|p| p.posting.business_time).collect::<Vec<_>>(),
        &column(|p| p.posting.cause_event_id),
        &events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        journal,
    )
    .execute(&mut *tx)
    .await?;
    let (ids, values): (Vec<Uuid>, Vec<i64>) = balances.iter().map(|(id, balance)| (*id, *balance)).unzip();
    sqlx::query!(
        "UPDATE balances SET balance = v.balance, updated_at = now()
         FROM unnest($1::uuid[], $2::bigint[]) AS v(account_id, balance)
         WHERE balances.account_id = v.account_id AND balances.balance <> v.balance",
        &ids,
        &values,
    )
    .execute(&mut *tx)
    .await?;
    add_to_daily_totals(tx, posted).await?;
    OUTBOX.add_all(tx, &events).await?;
    Ok(())
}

/// One day's posted amounts per kind, signed as posted.
#[derive(Debug, Default, Clone, Copy)]
struct KindTotals {
    assign_fees: i64,
    completion_rewards: i64,
    payouts: i64,
}

impl KindTotals {
    fn add(&mut self, kind: TransactionKind, amount: i64) {
        let total = match kind {
            TransactionKind::AssignFee => &mut self.assign_fees,
            TransactionKind::CompletionReward => &mut self.completion_rewards,
            TransactionKind::Payout => &mut self.payouts,
        };
        *total += amount;
    }
}

/// How many rows each day's totals are spread over, so concurrent postings rarely add to the
/// same one.
pub const TOTAL_SHARDS: u128 = 16;

/// The row of a day's totals that a batch whose first popug is `account` adds to.
pub fn totals_shard(account: Uuid) -> i16 {
    i16::try_from(account.as_u128() % TOTAL_SHARDS).expect("under 16")
}

/// Adds the posted amounts to the per-day totals, one row per day in the shard of the batch's
/// first popug.
async fn add_to_daily_totals(tx: &mut PgConnection, posted: &[Posted]) -> Result<()> {
    let shard = totals_shard(posted[0].posting.account_id);
    let mut days: BTreeMap<NaiveDate, KindTotals> = BTreeMap::new();
    for p in posted {
        days.entry(p.billing_date).or_default().add(p.posting.kind, p.posting.amount);
    }
    let dates: Vec<NaiveDate> = days.keys().copied().collect();
    let total = |f: fn(&KindTotals) -> i64| days.values().map(f).collect::<Vec<i64>>();
    sqlx::query!(
        "INSERT INTO daily_totals AS d (billing_date, shard, assign_fees, completion_rewards, payouts)
         SELECT day, $5, fees, rewards, payouts
         FROM unnest($1::date[], $2::bigint[], $3::bigint[], $4::bigint[]) AS t(day, fees, rewards, payouts)
         ON CONFLICT (billing_date, shard) DO UPDATE SET
             assign_fees = d.assign_fees + EXCLUDED.assign_fees,
             completion_rewards = d.completion_rewards + EXCLUDED.completion_rewards,
             payouts = d.payouts + EXCLUDED.payouts",
        &dates,
        &total(|t| t.assign_fees),
        &total(|t| t.completion_rewards),
        &total(|t| t.payouts),
        shard,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
