//! The backbone benchmark: raw JetStream and PostgreSQL rates, and the relay and consumer
//! throughput measured against them in the same run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, message::PublishMessage, stream};
use ates_devservers::{NatsCluster, NatsServer, PostgresOptions, PostgresServer};
use ates_messaging::streams::{self, StreamSettings};
use ates_messaging::{Consumer, ConsumerSpec, Handler, HandlerError, Outbox, Relay, RelaySettings, db, nats};
use ates_schemas::events::{AssignReason, TaskAssignedV1};
use ates_schemas::{Envelope, ReceivedEvent};
use clap::Args;
use futures::StreamExt;
use futures::future::join_all;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{grouped, machine, per_second, ratio};

const SCHEMA: &str = "bench";

#[derive(Args)]
pub struct BackboneArgs {
    /// How many events each measurement moves.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Use this NATS server instead of starting a temporary one.
    #[arg(long)]
    nats_url: Option<String>,
    /// Without `--nats-url`: how many nodes the temporary NATS has; more than one makes a
    /// JetStream cluster whose streams have that many replicas.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
    nats_nodes: u16,
    /// Use this PostgreSQL database instead of starting a temporary server.
    #[arg(long)]
    database_url: Option<String>,
}

fn event() -> Envelope<TaskAssignedV1> {
    Envelope::new(
        "bench",
        TaskAssignedV1 {
            task_id: Uuid::new_v4(),
            assignee_id: Uuid::new_v4(),
            previous_assignee_id: Some(Uuid::new_v4()),
            reason: AssignReason::Shuffle,
        },
    )
}

pub async fn run(args: BackboneArgs) -> anyhow::Result<()> {
    let n = args.events;
    // Temporary servers live until the end of the run.
    let (mut _nats_server, mut _nats_cluster) = (None, None);
    let replicas = usize::from(args.nats_nodes);
    let nats_url = match args.nats_url {
        Some(url) => url,
        None if replicas > 1 => {
            _nats_cluster.insert(NatsCluster::temporary(replicas, Vec::new()).await?).urls()
        }
        None => _nats_server.insert(NatsServer::temporary().await?).url(),
    };
    let pg_dir = tempfile::tempdir()?;
    let mut _pg_server = None;
    let database_url = match args.database_url {
        Some(url) => url,
        None => {
            let options = PostgresOptions {
                dir: pg_dir.path().to_path_buf(),
                port: None,
                durable: true,
                superuser_password: None,
                settings: Vec::new(),
            };
            _pg_server.insert(PostgresServer::start(options).await?).url("postgres")
        }
    };
    let pool = db::connect(&database_url, SCHEMA, 8)?;
    db::migrate(&pool, SCHEMA, std::iter::empty()).await.context("migrate the bench schema")?;
    ates_messaging::outbox::indexes::build(&pool).await.context("build the outbox's time indexes")?;
    sqlx::raw_sql(
        "DROP TABLE IF EXISTS raw_insert, effects, effects_some_rejected;
         CREATE TABLE raw_insert (event_id uuid PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL);
         CREATE TABLE effects (event_id uuid NOT NULL, assignee_id uuid NOT NULL);
         CREATE TABLE effects_some_rejected (LIKE effects);
         TRUNCATE outbox, processed_events, consumer_positions;",
    )
    .execute(&pool)
    .await?;
    let js = nats::jetstream(
        nats::connect(&nats_url, "ates-bench", None).await.map_err(anyhow::Error::from_boxed)?,
        Duration::from_secs(30),
    );
    for name in ["TASKS", "BENCH"] {
        let _ = js.delete_stream(name).await;
    }
    let settings = StreamSettings { replicas, ..StreamSettings::default() };
    streams::ensure(&js, &settings, &streams::ALL).await?;
    js.create_stream(stream::Config {
        name: "BENCH".into(),
        subjects: vec!["bench.>".into()],
        storage: stream::StorageType::File,
        num_replicas: replicas,
        ..Default::default()
    })
    .await?;

    let payload = serde_json::to_vec(&event())?;
    let pg_version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&pool).await?;
    let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&pool).await?;
    println!("aTES backbone benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}", machine::describe());
    println!(
        "servers: nats-server at {nats_url} (streams R{replicas}), PostgreSQL {pg_version} (fsync {fsync})"
    );
    println!("{} events per measurement, {} bytes each\n", grouped(n as u64), payload.len());

    let raw_publish = raw_jetstream_publish(&js, n, &payload).await?;
    line("raw JetStream async publish", raw_publish, "msg/s", None);
    let raw_insert = raw_postgres_insert(&pool, n, &payload).await?;
    line("raw PostgreSQL batched insert", raw_insert, "rows/s", None);

    let outbox_write = fill_outbox(&pool, n).await?;
    line("outbox write (validate + insert)", outbox_write, "events/s", Some((raw_insert, "raw insert")));
    let relay = relay_throughput(&pool, &js, n).await?;
    line("relay (outbox -> JetStream)", relay, "events/s", Some((raw_publish, "raw publish")));
    let raw_pull = raw_jetstream_pull(&js, n).await?;
    line("raw JetStream pull + ack", raw_pull, "msg/s", None);
    let all = OneRow { table: "effects", rejected: HashSet::new() };
    let consumer = consumer_throughput(&pool, &js, all).await?;
    line("consumer (dedupe + one-row effect)", consumer, "events/s", Some((raw_insert, "raw insert")));
    let rejected = every_nth_event(&pool, REJECTED_EVERY).await?;
    let some_bad = OneRow { table: "effects_some_rejected", rejected };
    let with_bad = consumer_throughput(&pool, &js, some_bad).await?;
    let label = format!("consumer, 1 in {} events rejected", grouped(REJECTED_EVERY as u64));
    line(&label, with_bad, "events/s", Some((consumer, "consumer")));
    Ok(())
}

fn line(what: &str, rate: u64, unit: &str, against: Option<(u64, &str)>) {
    let comparison =
        against.map(|(raw, name)| format!("  {} of {name}", ratio(rate, raw))).unwrap_or_default();
    println!("{what:<36} {:>10} {unit:<9}{comparison}", grouped(rate));
}

async fn raw_jetstream_publish(js: &jetstream::Context, n: usize, payload: &[u8]) -> anyhow::Result<u64> {
    let payload = bytes::Bytes::copy_from_slice(payload);
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut acks = Vec::with_capacity(chunk.len());
        for _ in chunk {
            let message =
                PublishMessage::build().payload(payload.clone()).message_id(Uuid::now_v7().to_string());
            acks.push(js.send_publish("bench.raw", message).await?);
        }
        for ack in join_all(acks.into_iter().map(IntoFuture::into_future)).await {
            ack?;
        }
    }
    Ok(per_second(n, started.elapsed()))
}

pub(super) async fn raw_postgres_insert(pool: &PgPool, n: usize, payload: &[u8]) -> anyhow::Result<u64> {
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let subjects = vec!["tasks.assigned.v1"; chunk.len()];
        let payloads = vec![payload; chunk.len()];
        sqlx::query("INSERT INTO raw_insert SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])")
            .bind(ids)
            .bind(subjects)
            .bind(payloads)
            .execute(pool)
            .await?;
    }
    Ok(per_second(n, started.elapsed()))
}

async fn fill_outbox(pool: &PgPool, n: usize) -> anyhow::Result<u64> {
    let outbox = Outbox::new("bench");
    let started = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let events: Vec<_> = chunk.iter().map(|_| event()).collect();
        let mut tx = pool.begin().await?;
        outbox.add_all(&mut tx, &events).await?;
        tx.commit().await?;
    }
    Ok(per_second(n, started.elapsed()))
}

async fn relay_throughput(pool: &PgPool, js: &jetstream::Context, n: usize) -> anyhow::Result<u64> {
    let relay =
        Relay::new(pool.clone(), js.clone(), SCHEMA, RelaySettings::keeping(Duration::from_secs(3600)));
    let started = Instant::now();
    let mut published = 0;
    loop {
        let round = relay.publish_pending().await?;
        if round.claimed == 0 {
            break;
        }
        published += round.published;
    }
    anyhow::ensure!(published == n, "the relay published {published} of {n}");
    Ok(per_second(n, started.elapsed()))
}

async fn raw_jetstream_pull(js: &jetstream::Context, n: usize) -> anyhow::Result<u64> {
    let stream = js.get_stream("TASKS").await?;
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("raw-pull".into()),
            max_ack_pending: 20_000,
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let mut messages = consumer.stream().max_messages_per_batch(1000).messages().await?;
    for _ in 0..n {
        let message = messages.next().await.context("stream ended")??;
        message.ack().await.map_err(anyhow::Error::from_boxed)?;
    }
    Ok(per_second(n, started.elapsed()))
}

/// The effect the consumer benchmarks apply: one row per event in `table`, except for the
/// events in `rejected`, which can never succeed.
struct OneRow {
    table: &'static str,
    rejected: HashSet<Uuid>,
}

impl Handler for OneRow {
    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        if let Some(bad) = events.iter().find(|e| self.rejected.contains(&e.meta.event_id)) {
            return Err(HandlerError::Rejected(format!(
                "event {} is one the benchmark rejects",
                bad.meta.event_id
            )));
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
        let assignees: Vec<Uuid> = events
            .iter()
            .map(|e| match &e.event {
                ates_schemas::DomainEvent::TaskAssigned(data) => data.assignee_id,
                _ => Uuid::nil(),
            })
            .collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} SELECT * FROM unnest($1::uuid[], $2::uuid[])",
            self.table
        )))
        .bind(ids)
        .bind(assignees)
        .execute(tx)
        .await?;
        Ok(())
    }
}

/// Every `REJECTED_EVERY`th event of the stream, in the consumer benchmark with bad events.
const REJECTED_EVERY: usize = 1000;

/// Events of the outbox, one in `every` (from the middle of the first `every`), for the
/// consumer to reject.
async fn every_nth_event(pool: &PgPool, every: usize) -> anyhow::Result<HashSet<Uuid>> {
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT event_id FROM outbox ORDER BY id").fetch_all(pool).await?;
    Ok(ids.into_iter().skip(every / 2).step_by(every).collect())
}

/// Runs a durable consumer named after `handler`'s table over the whole stream until it has
/// applied every event it does not reject. Returns the events it applied a second.
async fn consumer_throughput(pool: &PgPool, js: &jetstream::Context, handler: OneRow) -> anyhow::Result<u64> {
    let (table, rejected) = (handler.table, handler.rejected.len());
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(pool).await?;
    let expected = n - i64::try_from(rejected)?;
    let mut spec = ConsumerSpec::new(&format!("bench-{table}"), "TASKS", &[]);
    spec.batch_size = 1000;
    let shutdown = CancellationToken::new();
    let consumer = Consumer::new(js.clone(), pool.clone(), spec, Arc::new(handler));
    let started = Instant::now();
    let running = tokio::spawn(consumer.run(shutdown.clone()));
    let count = format!("SELECT count(*) FROM {table}");
    while sqlx::query_scalar::<_, i64>(AssertSqlSafe(count.as_str())).fetch_one(pool).await? < expected {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    running.await?;
    Ok(per_second(usize::try_from(expected)?, elapsed))
}
