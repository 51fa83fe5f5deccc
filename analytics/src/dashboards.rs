//! The projection behind the admin dashboards: per-day earnings, negative popugs and the most
//! expensive task, applied in any order and at most once per generation.
//!
//! Earnings and negative popugs are per billing day; the most expensive task is per day of
//! completion (the business date of `tasks.completed`), whatever day its reward was billed to.
//! What each stream contributes is in `consumers/`; this module holds the writes both
//! streams share: the task rows and each day's top task.

use std::collections::BTreeMap;

use ates_messaging::HandlerError;
use ates_messaging::projection::Projection;
use ates_schemas::ReceivedEvent;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::Result;
use crate::consumers;

/// The dashboards' read model.
#[derive(Debug, Clone, Copy)]
pub struct Dashboards {
    /// The company's time zone: which day a task was completed on.
    pub zone: Tz,
}

impl Projection for Dashboards {
    const TABLES: &'static [&'static str] = &["tasks", "days", "account_days", "day_top_tasks"];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        generation: i64,
        events: &[ReceivedEvent],
    ) -> Result<(), HandlerError> {
        Ok(self.apply_batch(tx, generation, events).await?)
    }
}

impl Dashboards {
    /// Applies a batch from any of the sources. The writes take their locks in one order (task
    /// rows, then account timelines, then days, then top tasks), so concurrent batches of
    /// different streams wait for each other instead of deadlocking.
    async fn apply_batch(
        &self,
        tx: &mut PgConnection,
        generation: i64,
        events: &[ReceivedEvent],
    ) -> Result<()> {
        let mut tasks = TaskFacts::default();
        consumers::tasks::collect(events, &mut tasks);
        let transactions = consumers::accounting::transactions(events);
        consumers::accounting::collect_rewards(&transactions, &mut tasks);
        let finished = record_tasks(tx, generation, &tasks).await?;
        consumers::accounting::apply(tx, generation, &transactions).await?;
        raise_top_tasks(tx, generation, self.zone, finished).await
    }
}

/// What one batch says about tasks, by task id.
#[derive(Debug, Default)]
pub(crate) struct TaskFacts<'a> {
    /// From `tasks.added`.
    pub names: BTreeMap<Uuid, TaskName<'a>>,
    /// When it was completed, from `tasks.completed`.
    pub completions: BTreeMap<Uuid, DateTime<Utc>>,
    /// Its completion reward, from a `completion_reward` transaction.
    pub rewards: BTreeMap<Uuid, i64>,
}

/// A task's title and jira id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskName<'a> {
    pub title: &'a str,
    pub jira_id: Option<&'a str>,
}

/// A task's completion time and reward, as its row holds them.
struct Finished {
    task_id: Uuid,
    completed_at: Option<DateTime<Utc>>,
    reward: Option<i64>,
}

/// Writes `facts` into the task rows and returns the rows, as they are now, of the tasks whose
/// completion time or reward came in.
async fn record_tasks(
    tx: &mut PgConnection,
    generation: i64,
    facts: &TaskFacts<'_>,
) -> Result<Vec<Finished>> {
    // One statement in task order for all three, so writers of different streams (titles and
    // completions from tasks.*, rewards from accounting.*) lock the rows they share in one order.
    let mut ids: Vec<Uuid> =
        facts.names.keys().chain(facts.completions.keys()).chain(facts.rewards.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let titles: Vec<Option<&str>> = ids.iter().map(|id| facts.names.get(id).map(|n| n.title)).collect();
    let jira_ids: Vec<Option<&str>> =
        ids.iter().map(|id| facts.names.get(id).and_then(|n| n.jira_id)).collect();
    let completions: Vec<Option<DateTime<Utc>>> =
        ids.iter().map(|id| facts.completions.get(id).copied()).collect();
    let rewards: Vec<Option<i64>> = ids.iter().map(|id| facts.rewards.get(id).copied()).collect();
    let rows = sqlx::query_as!(
        Finished,
        "INSERT INTO tasks AS t (generation, task_id, title, jira_id, completed_at, reward)
             SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::bigint[])
             ON CONFLICT (generation, task_id) DO UPDATE SET
                 title = coalesce(EXCLUDED.title, t.title),
                 jira_id = CASE WHEN EXCLUDED.title IS NULL THEN t.jira_id ELSE EXCLUDED.jira_id END,
                 completed_at = coalesce(EXCLUDED.completed_at, t.completed_at),
                 reward = coalesce(EXCLUDED.reward, t.reward)
             RETURNING task_id, completed_at, reward",
        generation,
        &ids,
        &titles as &[Option<&str>],
        &jira_ids as &[Option<&str>],
        &completions as &[Option<DateTime<Utc>>],
        &rewards as &[Option<i64>],
    )
    .fetch_all(&mut *tx)
    .await?;
    let came_in = |id: &Uuid| facts.completions.contains_key(id) || facts.rewards.contains_key(id);
    Ok(rows.into_iter().filter(|row| came_in(&row.task_id)).collect())
}

/// The best task of a day so far: the highest reward, ties to the greater task id (the field
/// order is the comparison order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Top {
    reward: i64,
    task_id: Uuid,
}

/// Keeps, per day of completion (in `zone`), the task with the highest completion reward
/// (ties: the greater task id), once both its completion and its reward are known.
async fn raise_top_tasks(
    tx: &mut PgConnection,
    generation: i64,
    zone: Tz,
    finished: Vec<Finished>,
) -> Result<()> {
    let mut best: BTreeMap<NaiveDate, Top> = BTreeMap::new();
    for task in finished {
        let (Some(completed_at), Some(reward)) = (task.completed_at, task.reward) else { continue };
        let day = completed_at.with_timezone(&zone).date_naive();
        let candidate = Top { reward, task_id: task.task_id };
        best.entry(day).and_modify(|top| *top = (*top).max(candidate)).or_insert(candidate);
    }
    if best.is_empty() {
        return Ok(());
    }
    let days: Vec<NaiveDate> = best.keys().copied().collect();
    let rewards: Vec<i64> = best.values().map(|top| top.reward).collect();
    let task_ids: Vec<Uuid> = best.values().map(|top| top.task_id).collect();
    sqlx::query!(
        "INSERT INTO day_top_tasks AS t (generation, day, reward, task_id)
         SELECT $1, * FROM unnest($2::date[], $3::bigint[], $4::uuid[])
         ON CONFLICT (generation, day) DO UPDATE SET reward = EXCLUDED.reward, task_id = EXCLUDED.task_id
         WHERE (EXCLUDED.reward, EXCLUDED.task_id) > (t.reward, t.task_id)",
        generation,
        &days,
        &rewards,
        &task_ids,
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}
