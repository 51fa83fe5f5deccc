//! Accounting draining a backlog of task events: prices, fees, rewards, double entry, outbox.

use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use ates_accounting::AccountingService;
use ates_accounting::consumers::tasks;
use ates_messaging::permissions::Subscription;
use ates_schemas::Envelope;
use ates_schemas::events::{AssignReason, TaskAddedV2, TaskAssignedV1, TaskCompletedV1};
use clap::Args;
use futures::future::join_all;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{grouped, machine, per_second, ratio};

#[derive(Args)]
pub struct AccountingArgs {
    /// Task events in the backlog (a quarter each: added, assigned, reassigned, completed).
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Popug accounts the tasks go to.
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    #[command(flatten)]
    statements: super::Statements,
    #[command(flatten)]
    postgres: super::PostgresSettings,
}

pub async fn run(args: AccountingArgs) -> anyhow::Result<()> {
    let servers = super::Servers::start_with(args.statements, &args.postgres).await?;
    let accounting =
        AccountingService::build(&servers.system_config("http://127.0.0.1:1")?.accounting()?).await?;
    super::provision(&accounting.backbone, &[ates_messaging::streams::TASKS]).await?;
    let pool = &accounting.backbone.pool;

    println!("aTES accounting benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}", machine::describe());
    let batch = accounting.backbone.config.delivery.batch_size;
    println!("PostgreSQL with fsync on; one accounting instance, batches of up to {batch} events\n");

    sqlx::raw_sql(
        "CREATE TABLE raw_insert (event_id uuid PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL)",
    )
    .execute(pool)
    .await?;
    let sample = serde_json::to_vec(&assigned(Uuid::new_v4(), Uuid::new_v4(), None))?;
    let raw = super::backbone::raw_postgres_insert(pool, args.events, &sample).await?;
    println!("{:<44} {:>10} rows/s", "raw PostgreSQL batched insert", grouped(raw));

    let backlog = backlog(args.events, args.accounts);
    let started = Instant::now();
    publish(&accounting.backbone.js, &backlog).await?;
    println!(
        "{:<44} {:>10} events/s (setup, not the measurement)",
        "backlog published to TASKS",
        grouped(per_second(backlog.len(), started.elapsed()))
    );

    args.statements.reset(pool).await?;
    let wal = super::Wal::now(pool).await?;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let consumers = accounting.task_consumers().map(|c| tokio::spawn(c.run(shutdown.clone())));
    // An error means the consumer does not exist yet.
    while !matches!(unacknowledged(&accounting.backbone.js).await, Ok(0)) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = per_second(backlog.len(), started.elapsed());
    let wal = super::Wal::now(pool).await?.since(wal, u64::try_from(backlog.len())?, "event");
    shutdown.cancel();
    for consumer in consumers {
        consumer.await?;
    }
    args.statements.print(pool).await?;
    let applied = applied(pool).await?;
    anyhow::ensure!(
        usize::try_from(applied)? == backlog.len(),
        "the backlog was acknowledged but {applied} of {} events were recorded as applied",
        backlog.len()
    );
    let (transactions, outbox): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM transactions), (SELECT count(*) FROM outbox)")
            .fetch_one(pool)
            .await?;
    println!(
        "{:<44} {:>10} events/s   {} of raw insert ({} transactions, {} outbox rows)",
        "accounting drains the backlog",
        grouped(rate),
        ratio(rate, raw),
        grouped(u64::try_from(transactions)?),
        grouped(u64::try_from(outbox)?)
    );
    println!("{:<44} {}", "WAL written during the drain", wal);
    let report = ates_accounting::invariants::check(pool, Duration::from_secs(3600)).await?;
    println!(
        "{:<44} {}",
        "invariants after the drain",
        if report.ok { "hold".to_owned() } else { report.problems.join("; ") }
    );
    Ok(())
}

/// How many task events accounting's consumers have not acknowledged yet (they acknowledge
/// after committing). Read from NATS, so polling it does not load the database being measured; an
/// error before the consumers exist.
pub(super) async fn unacknowledged(js: &async_nats::jetstream::Context) -> anyhow::Result<u64> {
    let mut total = 0;
    for Subscription { stream, consumer, .. } in tasks::SUBSCRIPTIONS {
        total += ates_messaging::waiting::unacknowledged(js, stream, consumer)
            .await
            .map_err(anyhow::Error::from_boxed)?;
    }
    Ok(total)
}

/// How many task events accounting has applied (`pool` in its schema): counted once a drain is
/// over.
pub(super) async fn applied(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    Ok(tasks::applied_count(pool).await?)
}

/// Publishes `backlog` (subject, payload) to JetStream, 10,000 at a time without waiting in
/// between, then waiting for their acks.
pub(super) async fn publish(
    js: &async_nats::jetstream::Context,
    backlog: &[(String, Vec<u8>)],
) -> anyhow::Result<()> {
    for chunk in backlog.chunks(10_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for (subject, payload) in chunk {
            let message = PublishMessage::build()
                .payload(payload.clone().into())
                .message_id(Uuid::now_v7().to_string());
            acks.push(js.send_publish(subject.clone(), message).await?);
        }
        for ack in join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            ack?;
        }
    }
    Ok(())
}

fn assigned(task_id: Uuid, assignee_id: Uuid, previous: Option<Uuid>) -> Envelope<TaskAssignedV1> {
    let reason = if previous.is_some() { AssignReason::Shuffle } else { AssignReason::Created };
    Envelope::new(
        "task-tracker",
        TaskAssignedV1 { task_id, assignee_id, previous_assignee_id: previous, reason },
    )
}

/// `events` task events: for each task, added, assigned, reassigned and completed.
pub(super) fn backlog(events: usize, accounts: usize) -> Vec<(String, Vec<u8>)> {
    let popugs: Vec<Uuid> = (0..accounts.max(1)).map(|_| Uuid::new_v4()).collect();
    let mut out = Vec::with_capacity(events);
    for n in 0..events.div_ceil(4) {
        let task = Uuid::new_v4();
        let (first, second) = (popugs[n % popugs.len()], popugs[(n * 7 + 3) % popugs.len()]);
        let added = TaskAddedV2 {
            task_id: task,
            title: format!("Task {n}"),
            jira_id: Some(format!("POP-{n}")),
            description: String::new(),
            created_by: first,
        };
        out.push((
            "tasks.added.v2".to_owned(),
            serde_json::to_vec(&Envelope::new("task-tracker", added)).expect("serializes"),
        ));
        out.push((
            "tasks.assigned.v1".to_owned(),
            serde_json::to_vec(&assigned(task, first, None)).expect("serializes"),
        ));
        out.push((
            "tasks.assigned.v1".to_owned(),
            serde_json::to_vec(&assigned(task, second, Some(first))).expect("serializes"),
        ));
        let done = TaskCompletedV1 { task_id: task, assignee_id: second };
        out.push((
            "tasks.completed.v1".to_owned(),
            serde_json::to_vec(&Envelope::new("task-tracker", done)).expect("serializes"),
        ));
    }
    out.truncate(events);
    out
}
