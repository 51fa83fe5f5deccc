//! The projection behind the admin dashboards: per-day earnings, negative popugs and the most
//! expensive task, applied in any order and at most once per generation.
//!
//! Earnings and negative popugs are per billing day; the most expensive task is per day of
//! completion (the business date of `tasks.completed`), whatever day its reward was billed to.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ates_messaging::HandlerError;
use ates_messaging::projection::Projection;
use ates_schemas::events::{TransactionAppliedV1, TransactionKind};
use ates_schemas::{DomainEvent, ReceivedEvent};
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::timeline::{self, Timeline};

/// The dashboards' read model.
#[derive(Debug, Clone, Copy)]
pub struct Dashboards {
    /// The company's time zone: which day a task was completed on.
    pub zone: Tz,
}

/// The advisory-lock namespace of account timelines (the two-key form, so it shares nothing
/// with the single-key locks other services take).
const TIMELINE_LOCKS: &str = "ates.analytics.account_days";

impl Projection for Dashboards {
    const TABLES: &'static [&'static str] = &["tasks", "days", "account_days", "day_top_tasks"];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        generation: i64,
        events: &[ReceivedEvent],
    ) -> Result<(), HandlerError> {
        let transactions: Vec<&TransactionAppliedV1> = events
            .iter()
            .filter_map(|e| match &e.event {
                DomainEvent::TransactionApplied(t) => Some(t),
                _ => None,
            })
            .collect();
        let finished = record_tasks(tx, generation, events, &transactions).await?;
        if !transactions.is_empty() {
            let negative_changes = update_timelines(tx, generation, &transactions).await?;
            add_to_days(tx, generation, &transactions, negative_changes).await?;
        }
        raise_top_tasks(tx, generation, self.zone, &finished).await?;
        Ok(())
    }
}

/// Task titles from `tasks.added`, completion times from `tasks.completed` and rewards from
/// `completion_reward` transactions. Returns the tasks whose completion time or reward came in.
async fn record_tasks(
    tx: &mut PgConnection,
    generation: i64,
    events: &[ReceivedEvent],
    transactions: &[&TransactionAppliedV1],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let mut titles: BTreeMap<Uuid, (&str, Option<&str>)> = BTreeMap::new();
    let mut completions: BTreeMap<Uuid, DateTime<Utc>> = BTreeMap::new();
    for event in events {
        match &event.event {
            DomainEvent::TaskAdded(added) => {
                titles.insert(added.task_id, (added.title.as_str(), added.jira_id.as_deref()));
            }
            DomainEvent::TaskCompleted(done) => {
                completions.insert(done.task_id, event.meta.event_time);
            }
            _ => {}
        }
    }
    let rewards: BTreeMap<Uuid, i64> = transactions
        .iter()
        .filter(|t| t.kind == TransactionKind::CompletionReward)
        .filter_map(|t| Some((t.task_id?, t.amount)))
        .collect();
    // One statement in task order for all three, so writers of different streams (titles and
    // completions from tasks.*, rewards from accounting.*) lock the rows they share in one order.
    let ids: BTreeSet<Uuid> =
        titles.keys().chain(completions.keys()).chain(rewards.keys()).copied().collect();
    if !ids.is_empty() {
        let ids: Vec<Uuid> = ids.into_iter().collect();
        sqlx::query(
            "INSERT INTO tasks AS t (generation, task_id, title, jira_id, completed_at, reward)
             SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
             ON CONFLICT (generation, task_id) DO UPDATE SET
                 title = coalesce(EXCLUDED.title, t.title),
                 jira_id = CASE WHEN EXCLUDED.title IS NULL THEN t.jira_id ELSE EXCLUDED.jira_id END,
                 completed_at = coalesce(EXCLUDED.completed_at, t.completed_at),
                 reward = coalesce(EXCLUDED.reward, t.reward)",
        )
        .bind(generation)
        .bind(&ids)
        .bind(ids.iter().map(|id| titles.get(id).map(|t| t.0)).collect::<Vec<_>>())
        .bind(ids.iter().map(|id| titles.get(id).and_then(|t| t.1)).collect::<Vec<_>>())
        .bind(ids.iter().map(|id| completions.get(id).copied()).collect::<Vec<_>>())
        .bind(ids.iter().map(|id| rewards.get(id).copied()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
    }
    let mut finished: Vec<Uuid> = completions.into_keys().chain(rewards.into_keys()).collect();
    finished.sort_unstable();
    finished.dedup();
    Ok(finished)
}

/// Takes the timeline lock of every account in `accounts` (sorted, distinct), in that order:
/// two writers of one generation (two instances, or a replay beside the live consumer) then
/// apply an account's changes one after the other instead of overwriting each other's.
async fn lock_timelines(tx: &mut PgConnection, accounts: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext($1), k)
         FROM (SELECT DISTINCT hashtext(a::text) AS k FROM unnest($2::uuid[]) AS a ORDER BY k) keys",
    )
    .bind(TIMELINE_LOCKS)
    .bind(accounts)
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
) -> Result<BTreeMap<NaiveDate, i64>, sqlx::Error> {
    let mut changes: BTreeMap<Uuid, BTreeMap<NaiveDate, i64>> = BTreeMap::new();
    for t in transactions {
        *changes.entry(t.account_id).or_default().entry(t.billing_date).or_default() += t.amount;
    }
    let accounts: Vec<Uuid> = changes.keys().copied().collect();
    lock_timelines(tx, &accounts).await?;
    let firsts: Vec<NaiveDate> =
        changes.values().map(|days| *days.keys().next().expect("a change")).collect();
    let before: HashMap<Uuid, i64> = sqlx::query_as(
        "SELECT a.account_id, d.balance FROM unnest($2::uuid[], $3::date[]) AS a(account_id, first_day)
         CROSS JOIN LATERAL (SELECT balance FROM account_days
                             WHERE generation = $1 AND account_id = a.account_id AND day < a.first_day
                             ORDER BY day DESC LIMIT 1) d",
    )
    .bind(generation)
    .bind(&accounts)
    .bind(&firsts)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let mut old: HashMap<Uuid, Timeline> = accounts
        .iter()
        .map(|a| (*a, Timeline { before: before.get(a).copied().unwrap_or(0), days: BTreeMap::new() }))
        .collect();
    let rows: Vec<(Uuid, NaiveDate, i64)> = sqlx::query_as(
        "SELECT d.account_id, d.day, d.balance FROM unnest($2::uuid[], $3::date[]) AS a(account_id, first_day)
         JOIN account_days d ON d.generation = $1 AND d.account_id = a.account_id AND d.day >= a.first_day",
    )
    .bind(generation)
    .bind(&accounts)
    .bind(&firsts)
    .fetch_all(&mut *tx)
    .await?;
    for (account, day, balance) in rows {
        old.get_mut(&account).expect("loaded").days.insert(day, balance);
    }
    let mut negative_changes: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    let (mut ids, mut days, mut balances) = (Vec::new(), Vec::new(), Vec::new());
    for (account, account_changes) in &changes {
        let before = &old[account];
        let after = timeline::with_changes(before, account_changes);
        for (day, change) in timeline::switch_changes(before, &after) {
            *negative_changes.entry(day).or_default() += change;
        }
        for (day, balance) in after.days {
            ids.push(*account);
            days.push(day);
            balances.push(balance);
        }
    }
    sqlx::query(
        "INSERT INTO account_days (generation, account_id, day, balance)
         SELECT $1, * FROM unnest($2::uuid[], $3::date[], $4::bigint[])
         ON CONFLICT (generation, account_id, day) DO UPDATE SET balance = EXCLUDED.balance",
    )
    .bind(generation)
    .bind(ids)
    .bind(days)
    .bind(balances)
    .execute(&mut *tx)
    .await?;
    Ok(negative_changes)
}

/// Adds the money moved and the negative-popug changes to each day's row.
async fn add_to_days(
    tx: &mut PgConnection,
    generation: i64,
    transactions: &[&TransactionAppliedV1],
    negative_changes: BTreeMap<NaiveDate, i64>,
) -> Result<(), sqlx::Error> {
    let mut days: BTreeMap<NaiveDate, [i64; 4]> = BTreeMap::new();
    for t in transactions {
        let column = match t.kind {
            TransactionKind::AssignFee => 0,
            TransactionKind::CompletionReward => 1,
            TransactionKind::Payout => 2,
        };
        days.entry(t.billing_date).or_default()[column] += t.amount;
    }
    for (day, change) in negative_changes {
        days.entry(day).or_default()[3] += change;
    }
    let column = |i: usize| days.values().map(|d| d[i]).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO days AS d (generation, day, assign_fees, completion_rewards, payouts, negative_change)
         SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[])
         ON CONFLICT (generation, day) DO UPDATE SET
             assign_fees = d.assign_fees + EXCLUDED.assign_fees,
             completion_rewards = d.completion_rewards + EXCLUDED.completion_rewards,
             payouts = d.payouts + EXCLUDED.payouts,
             negative_change = d.negative_change + EXCLUDED.negative_change",
    )
    .bind(generation)
    .bind(days.keys().copied().collect::<Vec<_>>())
    .bind(column(0))
    .bind(column(1))
    .bind(column(2))
    .bind(column(3))
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Keeps, per day of completion (in `zone`), the task with the highest completion reward
/// (ties: the greater task id), once both its completion and its reward are known.
async fn raise_top_tasks(
    tx: &mut PgConnection,
    generation: i64,
    zone: Tz,
    finished: &[Uuid],
) -> Result<(), sqlx::Error> {
    if finished.is_empty() {
        return Ok(());
    }
    let known: Vec<(Uuid, DateTime<Utc>, i64)> = sqlx::query_as(
        "SELECT task_id, completed_at, reward FROM tasks
         WHERE generation = $1 AND task_id = ANY($2) AND completed_at IS NOT NULL AND reward IS NOT NULL",
    )
    .bind(generation)
    .bind(finished)
    .fetch_all(&mut *tx)
    .await?;
    let mut best: BTreeMap<NaiveDate, (i64, Uuid)> = BTreeMap::new();
    for (task, completed_at, reward) in known {
        let day = completed_at.with_timezone(&zone).date_naive();
        let candidate = (reward, task);
        best.entry(day).and_modify(|b| *b = (*b).max(candidate)).or_insert(candidate);
    }
    if best.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO day_top_tasks AS t (generation, day, reward, task_id)
         SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::uuid[])
         ON CONFLICT (generation, day) DO UPDATE SET reward = EXCLUDED.reward, task_id = EXCLUDED.task_id
         WHERE (EXCLUDED.reward, EXCLUDED.task_id) > (t.reward, t.task_id)",
    )
    .bind(generation)
    .bind(best.keys().copied().collect::<Vec<_>>())
    .bind(best.values().map(|b| b.0).collect::<Vec<_>>())
    .bind(best.values().map(|b| b.1).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
