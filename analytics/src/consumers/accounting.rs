//! `ACCOUNTING` for the dashboards: every `transaction_applied` moves its billing day's money
//! and its account's end-of-day balances (which decide how many popugs are negative), and a
//! `completion_reward` gives its task its reward. `task_priced`, `billing_day_closed` and
//! `payout_sent` change nothing the dashboards show, so the consumer does not ask for them.

use std::collections::{BTreeMap, HashMap};

use ates_schemas::events::{TransactionAppliedV1, TransactionKind};
use ates_schemas::{DomainEvent, ReceivedEvent};
use chrono::NaiveDate;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::dashboards::TaskFacts;
use crate::domain::timeline::{self, Timeline};

/// The live consumer of `accounting.transaction_applied`.
pub const NAME: &str = "analytics-accounting";

/// The advisory-lock namespace of account timelines (the two-key form, so it shares nothing
/// with the single-key locks other services take).
const TIMELINE_LOCKS: &str = "ates.analytics.account_days";

/// The transactions among `events`.
pub(crate) fn transactions(events: &[ReceivedEvent]) -> Vec<&TransactionAppliedV1> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::TransactionApplied(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// Adds the completion rewards among `transactions` to `facts`, to be written with the task rows.
pub(crate) fn collect_rewards(transactions: &[&TransactionAppliedV1], facts: &mut TaskFacts<'_>) {
    for t in transactions {
        if let (TransactionKind::CompletionReward, Some(task_id)) = (t.kind, t.task_id) {
            facts.rewards.insert(task_id, t.amount);
        }
    }
}

/// Applies `transactions` to the account timelines and the per-day totals.
pub(crate) async fn apply(
    tx: &mut PgConnection,
    generation: i64,
    transactions: &[&TransactionAppliedV1],
) -> Result<()> {
    if transactions.is_empty() {
        return Ok(());
    }
    let negative_changes = update_timelines(tx, generation, transactions).await?;
    add_to_days(tx, generation, transactions, negative_changes).await
}

/// Takes the timeline lock of every account in `accounts` (sorted, distinct), in that order:
/// two writers of one generation (two instances, or a replay beside the live consumer) then
/// apply an account's changes one after the other instead of overwriting each other's.
async fn lock_timelines(tx: &mut PgConnection, accounts: &[Uuid]) -> Result<()> {
    sqlx::query!(
        "SELECT pg_advisory_xact_lock(hashtext($1), k)
         FROM (SELECT DISTINCT hashtext(a::text) AS k FROM unnest($2::uuid[]) AS a ORDER BY k) keys",
        TIMELINE_LOCKS,
        accounts,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves each touched account's end-of-day balances and returns the resulting changes in the
/// number of negative popugs per day.
async fn update_timelines(
    tx: &mut PgConnection,
    generation: i64,
    transactions: &[&TransactionAppliedV1],
) -> Result<BTreeMap<NaiveDate, i64>> {
    let mut changes: BTreeMap<Uuid, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for t in transactions {
        *changes.entry(t.account_id).or_default().entry(t.billing_date).or_default() += t.amount;
    }
    let accounts: Vec<Uuid> = changes.keys().copied().collect();
    lock_timelines(tx, &accounts).await?;
    let mut old = load_timelines(tx, generation, &changes).await?;
    let mut negative_changes: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let (mut ids, mut days, mut balances) = (Vec::new(), Vec::new(), Vec::new());
    for (account, account_changes) in &changes {
        let before = old.remove(account).unwrap_or_default();
        let after = timeline::with_changes(&before, account_changes);
        for (day, change) in timeline::switch_changes(&before, &after) {
            *negative_changes.entry(day).or_default() += change;
        }
        for (day, balance) in after.days {
            ids.push(*account);
            days.push(day);
            balances.push(balance);
        }
    }
    sqlx::query!(
        "INSERT INTO account_days (generation, account_id, day, balance)
         SELECT $1, * FROM unnest($2::uuid[], $3::date[], $4::bigint[])
         ON CONFLICT (generation, account_id, day) DO UPDATE SET balance = EXCLUDED.balance",
        generation,
        &ids,
        &days,
        &balances,
    )
    .execute(&mut *tx)
    .await?;
    Ok(negative_changes)
}

/// Each changed account's timeline from the first day it changes on: the balance before that
/// day and the end-of-day balances from it on (an account not seen yet has an empty one).
async fn load_timelines(
    tx: &mut PgConnection,
    generation: i64,
    changes: &BTreeMap<Uuid, BTreeMap<NaiveDate, i64>>,
) -> Result<HashMap<Uuid, Timeline>> {
    let accounts: Vec<Uuid> = changes.keys().copied().collect();
    let firsts: Vec<NaiveDate> =
        changes.values().map(|days| *days.keys().next().expect("a change")).collect();
    let before = sqlx::query!(
        r#"SELECT a.account_id AS "account_id!", d.balance AS "balance!"
           FROM unnest($2::uuid[], $3::date[]) AS a(account_id, first_day)
           CROSS JOIN LATERAL (SELECT balance FROM account_days
                               WHERE generation = $1 AND account_id = a.account_id AND day < a.first_day
                               ORDER BY day DESC LIMIT 1) d"#,
        generation,
        &accounts,
        &firsts,
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut timelines: HashMap<Uuid, Timeline> = HashMap::new();
    for row in before {
        timelines.entry(row.account_id).or_default().before = row.balance;
    }
    let days = sqlx::query!(
        r#"SELECT d.account_id, d.day, d.balance
           FROM unnest($2::uuid[], $3::date[]) AS a(account_id, first_day)
           JOIN account_days d ON d.generation = $1 AND d.account_id = a.account_id AND d.day >= a.first_day"#,
        generation,
        &accounts,
        &firsts,
    )
    .fetch_all(&mut *tx)
    .await?;
    for row in days {
        timelines.entry(row.account_id).or_default().days.insert(row.day, row.balance);
    }
    Ok(timelines)
}

/// A day's totals in one batch: money moved by kind (as posted, signed) and the change in
/// negative popugs.
#[derive(Debug, Clone, Copy, Default)]
struct DayTotals {
    assign_fees: i64,
    completion_rewards: i64,
    payouts: i64,
    negative_change: i64,
}

/// Adds the money moved and the negative-popug changes to each day's row.
async fn add_to_days(
    tx: &mut PgConnection,
    generation: i64,
    transactions: &[&TransactionAppliedV1],
    negative_changes: BTreeMap<NaiveDate, i64>,
) -> Result<()> {
    let mut totals: BTreeMap<NaiveDate, DayTotals> = BTreeMap::new();
    for t in transactions {
        let day = totals.entry(t.billing_date).or_default();
        match t.kind {
            TransactionKind::AssignFee => day.assign_fees += t.amount,
            TransactionKind::CompletionReward => day.completion_rewards += t.amount,
            TransactionKind::Payout => day.payouts += t.amount,
        }
    }
    for (day, change) in negative_changes {
        totals.entry(day).or_default().negative_change += change;
    }
    let column = |field: fn(&DayTotals) -> i64| totals.values().map(field).collect::<Vec<i64>>();
    sqlx::query!(
        "INSERT INTO days AS d (generation, day, assign_fees, completion_rewards, payouts, negative_change)
         SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (generation, day) DO UPDATE SET
             assign_fees = d.assign_fees + EXCLUDED.assign_fees,
             completion_rewards = d.completion_rewards + EXCLUDED.completion_rewards,
             payouts = d.payouts + EXCLUDED.payouts,
             negative_change = d.negative_change + EXCLUDED.negative_change",
        generation,
        &totals.keys().copied().collect::<Vec<_>>(),
        &column(|d| d.assign_fees),
        &column(|d| d.completion_rewards),
        &column(|d| d.payouts),
        &column(|d| d.negative_change),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
