//! The consumers of `tasks.*`: they price each task once and post fees and rewards.
//!
//! `tasks.added` fills in a task's title and jira id, `tasks.assigned` debits the assignee the
//! fee, `tasks.completed` credits the completer the reward. Completions have a consumer of their
//! own, so a reward is not queued behind the burst of fees a shuffle causes. Either consumer
//! prices a task it sees first, so they need no order between them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use ates_messaging::permissions::Subscription;
use ates_messaging::{Backbone, Consumer, Handler, HandlerError, streams};
use ates_schemas::events::TaskPricedV1;
use ates_schemas::{DomainEvent, Envelope, ReceivedEvent};
use chrono_tz::Tz;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Result;
use crate::domain::posting::{posting_for, task_of};
use crate::domain::pricing::Price;
use crate::ledger::{OUTBOX, post};

/// The durable consumer of additions and assignments: titles and fees.
pub const LEDGER: Subscription = Subscription {
    stream: streams::TASKS,
    consumer: "accounting-tasks",
    events: &["tasks.added", "tasks.assigned"],
};

/// The durable consumer of completions: rewards.
pub const REWARDS: Subscription =
    Subscription { stream: streams::TASKS, consumer: "accounting-completions", events: &["tasks.completed"] };

/// Both, which between them receive every task event.
pub const SUBSCRIPTIONS: [Subscription; 2] = [LEDGER, REWARDS];

/// The consumers that apply `backbone`'s `TASKS` stream to the ledger, with business dates
/// reckoned in `zone`.
pub fn consumers(backbone: &Backbone, zone: Tz) -> [Consumer<TaskEvents>; 2] {
    let handler = Arc::new(TaskEvents { zone });
    SUBSCRIPTIONS.map(|subscription| backbone.consumer(&subscription, handler.clone()))
}

/// Applies task events to the ledger, in any order and at most once each.
pub struct TaskEvents {
    /// Where business dates are reckoned.
    pub zone: Tz,
}

impl Handler for TaskEvents {
    /// What an event did is its own record: its transaction, or its task's title.
    const RECORDS_APPLIED: bool = true;

    async fn recorded(&self, pool: &PgPool, consumer: &str, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
        applied(pool, consumer, ids).await
    }

    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        let tasks: Vec<Uuid> =
            events.iter().filter_map(task_of).collect::<BTreeSet<_>>().into_iter().collect();
        if tasks.is_empty() {
            return Ok(());
        }
        let added = additions(events);
        let Priced { prices, new } = price(tx, &tasks, &added, events).await?;
        let titled_later: Vec<&Addition<'_>> = added.values().filter(|a| !new.contains(&a.task_id)).collect();
        record_titles(tx, &titled_later).await?;
        let postings = events.iter().filter_map(|e| posting_for(e, prices[&task_of(e)?])).collect();
        post(tx, postings, self.zone, None).await?;
        Ok(())
    }
}

/// Which of `ids` the task consumer `consumer` has applied: the events whose fee or reward is
/// posted, whose title is recorded, or which it recorded as applied before it kept no record of
/// its own. Every event is handled idempotently, so nothing else needs recording: a posting
/// whose transaction exists is skipped, a task is priced once, a title written again is the same.
pub async fn applied(pool: &PgPool, consumer: &str, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
    let found = sqlx::query_scalar!(
        r#"SELECT cause_event_id AS "id!" FROM transactions WHERE cause_event_id = ANY($1) AND kind <> 'payout'
           UNION SELECT added_event_id FROM tasks WHERE added_event_id = ANY($1)
           UNION SELECT event_id FROM processed_events WHERE consumer = $2 AND event_id = ANY($1)"#,
        ids,
        consumer,
    )
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().collect())
}

/// How many task events are applied, by their own records (fees and rewards posted, titles
/// recorded): what benchmarks and tests wait for.
pub async fn applied_count(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT (SELECT count(*) FROM transactions WHERE kind <> 'payout')
                + (SELECT count(*) FROM tasks WHERE added_event_id IS NOT NULL) AS "count!""#
    )
    .fetch_one(pool)
    .await
}

/// A task's price as stored.
struct PricedTask {
    task_id: Uuid,
    assign_fee: i64,
    completion_reward: i64,
}

/// A `tasks.added` of the batch: the title and jira id it gives its task.
struct Addition<'a> {
    event_id: Uuid,
    task_id: Uuid,
    title: &'a str,
    jira_id: Option<&'a str>,
}

/// The first `tasks.added` of each task in `events`, in task order (the order their rows are
/// written in, as every instance does).
fn additions(events: &[ReceivedEvent]) -> BTreeMap<Uuid, Addition<'_>> {
    let mut added = BTreeMap::new();
    for event in events {
        if let DomainEvent::TaskAdded(a) = &event.event {
            added.entry(a.task_id).or_insert(Addition {
                event_id: event.meta.event_id,
                task_id: a.task_id,
                title: &a.title,
                jira_id: a.jira_id.as_deref(),
            });
        }
    }
    added
}

/// The prices of a batch's tasks, and which of them it priced.
struct Priced {
    prices: HashMap<Uuid, Price>,
    new: HashSet<Uuid>,
}

/// Gives every task not priced yet its price, with its title if its `tasks.added` is among
/// `added` (and queues `accounting.task_priced`, carrying the correlation id of the first of
/// `events` about the task), then returns the price of every task in `tasks`. A later event
/// never re-prices a task.
async fn price(
    tx: &mut PgConnection,
    tasks: &[Uuid],
    added: &BTreeMap<Uuid, Addition<'_>>,
    events: &[ReceivedEvent],
) -> Result<Priced> {
    let drawn: Vec<Price> = {
        let mut rng = rand::rng();
        tasks.iter().map(|_| Price::draw(&mut rng)).collect()
    };
    let addition: Vec<Option<&Addition<'_>>> = tasks.iter().map(|t| added.get(t)).collect();
    let priced = sqlx::query_as!(
        PricedTask,
        "INSERT INTO tasks (task_id, assign_fee, completion_reward, title, jira_id, added_event_id)
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::uuid[])
         ON CONFLICT DO NOTHING RETURNING task_id, assign_fee, completion_reward",
        tasks,
        &drawn.iter().map(|p| p.assign_fee).collect::<Vec<_>>(),
        &drawn.iter().map(|p| p.completion_reward).collect::<Vec<_>>(),
        &addition.iter().map(|a| a.map(|a| a.title)).collect::<Vec<_>>() as &[Option<&str>],
        &addition.iter().map(|a| a.and_then(|a| a.jira_id)).collect::<Vec<_>>() as &[Option<&str>],
        &addition.iter().map(|a| a.map(|a| a.event_id)).collect::<Vec<_>>() as &[Option<Uuid>],
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut correlation: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    for event in events {
        if let Some(task) = task_of(event) {
            correlation.entry(task).or_insert(event.meta.correlation_id);
        }
    }
    let new: HashSet<Uuid> = priced.iter().map(|p| p.task_id).collect();
    let earlier: Vec<Uuid> = tasks.iter().filter(|t| !new.contains(t)).copied().collect();
    let queued: Vec<Envelope<TaskPricedV1>> = priced
        .iter()
        .map(|&PricedTask { task_id, assign_fee, completion_reward }| {
            Envelope::new(OUTBOX.producer(), TaskPricedV1 { task_id, assign_fee, completion_reward })
                .correlated(correlation.get(&task_id).copied().flatten())
        })
        .collect();
    OUTBOX.add_all(tx, &queued).await?;
    let before = match earlier.is_empty() {
        true => Vec::new(),
        false => {
            sqlx::query_as!(
                PricedTask,
                "SELECT task_id, assign_fee, completion_reward FROM tasks WHERE task_id = ANY($1)",
                &earlier,
            )
            .fetch_all(&mut *tx)
            .await?
        }
    };
    let prices = priced
        .into_iter()
        .chain(before)
        .map(|p| (p.task_id, Price { assign_fee: p.assign_fee, completion_reward: p.completion_reward }))
        .collect();
    Ok(Priced { prices, new })
}

/// Fills in the title and jira id of tasks priced before their `tasks.added` came, with the id
/// of that event as its record.
async fn record_titles(tx: &mut PgConnection, added: &[&Addition<'_>]) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    sqlx::query!(
        "UPDATE tasks SET title = v.title, jira_id = v.jira_id, added_event_id = v.event_id
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[]) AS v(task_id, title, jira_id, event_id)
         WHERE tasks.task_id = v.task_id",
        &added.iter().map(|a| a.task_id).collect::<Vec<_>>(),
        &added.iter().map(|a| a.title).collect::<Vec<_>>() as &[&str],
        &added.iter().map(|a| a.jira_id).collect::<Vec<_>>() as &[Option<&str>],
        &added.iter().map(|a| a.event_id).collect::<Vec<_>>(),
    )
    .execute(tx)
    .await?;
    Ok(())
}
