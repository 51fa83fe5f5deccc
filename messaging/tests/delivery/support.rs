//! The harness: one service schema with an outbox, a relay, consumers and an effects table.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use ates_messaging::streams::{self, StreamSettings};
use ates_messaging::{Consumer, ConsumerSpec, Handler, HandlerError, Outbox, Relay, RelaySettings, db, nats};
use ates_schemas::events::TaskCompletedV1;
use ates_schemas::{DomainEvent, Envelope, ReceivedEvent};
use ates_testkit::{TestDb, TestNats};
use futures::StreamExt;
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub const SCHEMA: &str = "svc";

/// Held by the tests that stop, kill or damage NATS servers, so that at most one of them runs at
/// a time: on a 2-core machine several at once slow leader elections and restarts past their waits.
pub static SERVER_FAULTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
pub const OUTBOX: Outbox = Outbox::new("test");

/// Sends the logs of everything this test's thread runs to the test's output, which the
/// harness shows when the test fails.
pub fn log_to_test_output() -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("info,ates_messaging=debug")
        .with_test_writer()
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

/// NATS, a migrated schema, and the background tasks a test starts; stopped on drop.
pub struct Env {
    /// The test's own server, unless it runs on servers it started itself.
    pub nats: Option<TestNats>,
    pub pool: PgPool,
    pub js: jetstream::Context,
    pub shutdown: CancellationToken,
}

impl Env {
    /// A fresh NATS server and a fresh database in the shared PostgreSQL server.
    pub async fn start() -> Self {
        Self::with_database(ates_testkit::database().await).await
    }

    pub async fn with_database(db: TestDb) -> Self {
        let nats = TestNats::start().await;
        let mut env = Self::with(db, &nats.url()).await;
        env.nats = Some(nats);
        env
    }

    /// A fresh database, on the NATS servers at `urls` (comma-separated), with streams made
    /// to `settings`.
    pub async fn on_nats(urls: &str, settings: &StreamSettings) -> Self {
        Self::with_streams(ates_testkit::database().await, urls, settings).await
    }

    async fn with(db: TestDb, nats_urls: &str) -> Self {
        Self::with_streams(db, nats_urls, &StreamSettings::default()).await
    }

    async fn with_streams(db: TestDb, nats_urls: &str, settings: &StreamSettings) -> Self {
        let pool = db::connect(&db.url, SCHEMA, 10).unwrap();
        db::migrate(&pool, SCHEMA, std::iter::empty()).await.unwrap();
        ates_messaging::outbox::indexes::build(&pool).await.unwrap();
        for table in ["effects", "replayed"] {
            sqlx::query(AssertSqlSafe(format!(
                "CREATE TABLE {table} (event_id uuid NOT NULL, task_id uuid NOT NULL)"
            )))
            .execute(&pool)
            .await
            .unwrap();
        }
        let js = Self::connect(nats_urls).await;
        streams::ensure(&js, settings, &streams::ALL).await.unwrap();
        Env { nats: None, pool, js, shutdown: CancellationToken::new() }
    }

    /// The test's own NATS server.
    pub fn nats(&mut self) -> &mut TestNats {
        self.nats.as_mut().expect("the test's own NATS server")
    }

    /// A JetStream context on its own client connection to `url`.
    pub async fn connect(url: &str) -> jetstream::Context {
        nats::jetstream(nats::connect(url, "test", None).await.unwrap(), Duration::from_secs(5))
    }

    pub fn relay(&self) -> Relay {
        Relay::new(self.pool.clone(), self.js.clone(), SCHEMA, self.relay_settings())
    }

    /// Small batches and a short poll.
    pub fn relay_settings(&self) -> RelaySettings {
        RelaySettings {
            batch_size: 500,
            idle_poll: Duration::from_millis(50),
            ..RelaySettings::keeping(Duration::from_secs(3600))
        }
    }

    pub fn spawn_relay(&self) {
        tokio::spawn(self.relay().run(self.shutdown.child_token()));
    }

    pub fn consumer(&self, handler: &Arc<Effects>) -> Consumer<Effects> {
        self.consumer_with(spec(), handler)
    }

    /// A consumer of the test stream with `spec` instead of the default one.
    pub fn consumer_with(&self, spec: ConsumerSpec, handler: &Arc<Effects>) -> Consumer<Effects> {
        Consumer::new(self.js.clone(), self.pool.clone(), spec, handler.clone())
    }

    pub fn spawn_consumer(&self, handler: &Arc<Effects>) -> tokio::task::JoinHandle<()> {
        self.spawn_consumer_from(self.consumer(handler))
    }

    /// Runs `consumer` until the test ends.
    pub fn spawn_consumer_from(&self, consumer: Consumer<Effects>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(consumer.run(self.shutdown.child_token()))
    }

    /// Commits `count` events through the outbox in transactions of up to 100; returns their ids.
    pub async fn commit_events(&self, count: usize) -> Vec<Uuid> {
        let mut ids = Vec::with_capacity(count);
        for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
            let envelopes: Vec<_> = chunk.iter().map(|_| completed()).collect();
            ids.extend(envelopes.iter().map(|e| e.event_id));
            commit(&self.pool, &envelopes).await;
        }
        ids
    }

    /// (rows, distinct event ids) in `table`.
    pub async fn effects_in(&self, table: &str) -> (i64, i64) {
        sqlx::query_as(AssertSqlSafe(format!("SELECT count(*), count(DISTINCT event_id) FROM {table}")))
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    /// Waits until `count` distinct events have had their effect, then checks none had two.
    pub async fn expect_effects_exactly_once(&self, count: i64) {
        self.expect_effects_exactly_once_within(count, Duration::from_secs(30)).await;
    }

    /// [`Env::expect_effects_exactly_once`], waiting up to `wait` (a cluster electing new leaders
    /// on a busy machine takes a while).
    pub async fn expect_effects_exactly_once_within(&self, count: i64, wait: Duration) {
        let until = tokio::time::Instant::now() + wait;
        let (rows, distinct) = loop {
            let (rows, distinct) = self.effects_in("effects").await;
            if distinct >= count {
                break (rows, distinct);
            }
            if tokio::time::Instant::now() >= until {
                panic!("timed out after {wait:?} waiting for {count} effects; {}", self.state().await);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!((rows, distinct), (count, count), "every event has exactly one effect");
    }

    /// Waits until every stream and the durable consumer have a leader and all their
    /// replicas are current (a node killed before that may take the only copy with it), then
    /// returns the server that leads TASKS.
    pub async fn wait_until_replicated(&self) -> String {
        let replicated = |cluster: Option<&jetstream::stream::ClusterInfo>| {
            cluster.and_then(|c| {
                let current = c.replicas.iter().filter(|r| r.current && !r.offline).count();
                c.leader.clone().filter(|_| current == c.replicas.len() && !c.replicas.is_empty())
            })
        };
        ates_testkit::eventually_with("replicated streams", Duration::from_secs(60), || async {
            let mut task_leader = None;
            for name in streams::ALL {
                let mut stream = self.js.get_stream(name).await.ok()?;
                let leader = replicated(stream.info().await.ok()?.cluster.as_ref())?;
                if name == "TASKS" {
                    task_leader = Some(leader);
                }
            }
            let stream = self.js.get_stream("TASKS").await.ok()?;
            let mut consumer = stream.get_consumer::<pull::Config>(CONSUMER).await.ok()?;
            replicated(consumer.info().await.ok()?.cluster.as_ref())?;
            task_leader
        })
        .await
    }

    /// Where the events are: effects, unpublished rows, the stream and the durable consumer.
    pub async fn state(&self) -> String {
        let (rows, distinct) = self.effects_in("effects").await;
        let unpublished = self.unpublished().await;
        let stream = match self.js.get_stream("TASKS").await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => format!(
                    "{:?}, leader {:?}",
                    info.state,
                    info.cluster.as_ref().and_then(|c| c.leader.clone())
                ),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let consumer = match self.js.get_stream("TASKS").await {
            Ok(stream) => match stream.get_consumer::<pull::Config>(CONSUMER).await {
                Ok(mut consumer) => match consumer.info().await {
                    Ok(i) => format!(
                        "delivered {:?}, ack floor {:?}, ack pending {}, pending {}, waiting {}, leader {:?}",
                        i.delivered,
                        i.ack_floor,
                        i.num_ack_pending,
                        i.num_pending,
                        i.num_waiting,
                        i.cluster.as_ref().and_then(|c| c.leader.clone())
                    ),
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        format!(
            "effects {rows} ({distinct} distinct), unpublished {unpublished}; stream: {stream}; consumer: {consumer}"
        )
    }

    /// Waits until the relay has marked every outbox row published: it marks them after the
    /// stream has them, so a test that saw them in the stream may still find them unmarked.
    pub async fn expect_all_published(&self) {
        ates_testkit::eventually("every outbox row to be marked published", || async {
            (self.unpublished().await == 0).then_some(())
        })
        .await;
    }

    pub async fn unpublished(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }

    pub async fn stream_messages(&self, stream: &str) -> u64 {
        self.js.get_stream(stream).await.unwrap().info().await.unwrap().state.messages
    }

    /// (stream sequence, event id if the payload has one) of every message in `stream`.
    pub async fn stream_contents(&self, stream: &str) -> Vec<(u64, Option<Uuid>)> {
        let stream = self.js.get_stream(stream).await.unwrap();
        let ordered = stream.create_consumer(pull::OrderedConfig::default()).await.unwrap();
        let mut contents = Vec::new();
        if ordered.cached_info().num_pending == 0 {
            return contents;
        }
        let mut messages = ordered.messages().await.unwrap();
        while let Some(message) = messages.next().await {
            let message = message.unwrap();
            let info = message.info().unwrap();
            let event_id = serde_json::from_slice::<serde_json::Value>(&message.payload)
                .ok()
                .and_then(|v| v["event_id"].as_str().and_then(|id| id.parse().ok()));
            contents.push((info.stream_sequence, event_id));
            if info.pending == 0 {
                break;
            }
        }
        contents
    }

    /// The durable consumer's (unacknowledged, not yet delivered) message counts.
    pub async fn consumer_backlog(&self) -> (usize, u64) {
        let info = self.consumer_info().await;
        (info.num_ack_pending, info.num_pending)
    }

    /// How many messages the server has delivered to the test consumer, redeliveries included.
    pub async fn consumer_deliveries(&self) -> u64 {
        self.consumer_info().await.delivered.consumer_sequence
    }

    async fn consumer_info(&self) -> jetstream::consumer::Info {
        let stream = self.js.get_stream("TASKS").await.unwrap();
        let mut consumer: jetstream::consumer::PullConsumer = stream.get_consumer(CONSUMER).await.unwrap();
        consumer.info().await.unwrap().clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub const CONSUMER: &str = "effects";

/// The consumer settings of these tests: short waits so retries happen quickly.
pub fn spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(CONSUMER, "TASKS", &[]);
    spec.max_deliveries = 3;
    spec.ack_wait = Duration::from_secs(2);
    spec.retry_initial = Duration::from_millis(50);
    spec.retry_max = Duration::from_millis(200);
    spec
}

/// Writes `envelopes` into the outbox in one committed transaction.
pub async fn commit<E: ates_schemas::Event>(pool: &PgPool, envelopes: &[Envelope<E>]) {
    let mut tx = pool.begin().await.unwrap();
    OUTBOX.add_all(&mut tx, envelopes).await.unwrap();
    tx.commit().await.unwrap();
}

/// A `tasks.completed` event for a new task.
pub fn completed() -> Envelope<TaskCompletedV1> {
    Envelope::new("test", TaskCompletedV1 { task_id: Uuid::new_v4(), assignee_id: Uuid::new_v4() })
}

/// How the handler misbehaves for one task.
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Fails transiently on every attempt.
    Always,
    /// Fails transiently on the first `n` attempts.
    Times(usize),
    /// Can never succeed, and says so: parked at once.
    Rejected,
}

/// A handler with a one-row effect per event: a row in its table. It can be told to fail for
/// some tasks, and to stop inside its first transaction until a gate opens.
pub struct Effects {
    table: &'static str,
    failures: Mutex<HashMap<Uuid, Failure>>,
    /// When each task's events were tried, in order.
    attempts: Mutex<HashMap<Uuid, Vec<Instant>>>,
    calls: AtomicUsize,
    largest: AtomicUsize,
    gate: Option<Arc<Gate>>,
    /// How long each call takes before it writes.
    pause: Duration,
}

impl Effects {
    pub fn new(table: &'static str) -> Arc<Self> {
        Arc::new(Self::plain(table))
    }

    fn plain(table: &'static str) -> Self {
        Effects {
            table,
            failures: Mutex::default(),
            attempts: Mutex::default(),
            calls: AtomicUsize::new(0),
            largest: AtomicUsize::new(0),
            gate: None,
            pause: Duration::ZERO,
        }
    }

    /// A handler whose every call takes `pause` (a slow database).
    pub fn slow(table: &'static str, pause: Duration) -> Arc<Self> {
        Arc::new(Effects { pause, ..Self::plain(table) })
    }

    pub fn gated(table: &'static str, gate: &Arc<Gate>) -> Arc<Self> {
        Arc::new(Effects { gate: Some(gate.clone()), ..Self::plain(table) })
    }

    pub fn fail(&self, task_id: Uuid, failure: Failure) {
        self.failures.lock().unwrap().insert(task_id, failure);
    }

    pub fn heal(&self, task_id: Uuid) {
        self.failures.lock().unwrap().remove(&task_id);
    }

    pub fn attempts(&self, task_id: Uuid) -> usize {
        self.attempts.lock().unwrap().get(&task_id).map_or(0, Vec::len)
    }

    /// When the handler was given the task's events, in order.
    pub fn attempt_times(&self, task_id: Uuid) -> Vec<Instant> {
        self.attempts.lock().unwrap().get(&task_id).cloned().unwrap_or_default()
    }

    /// How many batches the handler was given.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The most events the handler was given in one batch.
    pub fn largest_batch(&self) -> usize {
        self.largest.load(Ordering::SeqCst)
    }

    fn check(&self, task_id: Uuid) -> Result<(), HandlerError> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let times = attempts.entry(task_id).or_default();
            times.push(Instant::now());
            times.len()
        };
        match self.failures.lock().unwrap().get(&task_id) {
            Some(Failure::Always) => Err(HandlerError::Transient("the handler always fails".into())),
            Some(Failure::Rejected) => Err(HandlerError::Rejected("the handler never takes it".into())),
            Some(Failure::Times(n)) if attempt <= *n => {
                Err(HandlerError::Transient(format!("failure {attempt} of {n}").into()))
            }
            _ => Ok(()),
        }
    }
}

pub fn task_id(event: &ReceivedEvent) -> Uuid {
    match &event.event {
        DomainEvent::TaskCompleted(data) => data.task_id,
        _ => Uuid::nil(),
    }
}

impl Handler for Effects {
    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.largest.fetch_max(events.len(), Ordering::SeqCst);
        if !self.pause.is_zero() {
            tokio::time::sleep(self.pause).await;
        }
        for event in events {
            self.check(task_id(event))?;
        }
        let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
        let tasks: Vec<Uuid> = events.iter().map(task_id).collect();
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {} (event_id, task_id) SELECT * FROM unnest($1::uuid[], $2::uuid[])",
            self.table
        )))
        .bind(ids)
        .bind(tasks)
        .execute(&mut *tx)
        .await?;
        if let Some(gate) = &self.gate {
            gate.pass().await;
        }
        Ok(())
    }
}

/// Stops the first handler call inside its transaction until the test opens it.
pub struct Gate {
    used: AtomicBool,
    entered: Notify,
    open: Semaphore,
}

impl Gate {
    pub fn new() -> Arc<Self> {
        Arc::new(Gate { used: AtomicBool::new(false), entered: Notify::new(), open: Semaphore::new(0) })
    }

    async fn pass(&self) {
        if !self.used.swap(true, Ordering::SeqCst) {
            self.entered.notify_one();
            self.open.acquire().await.unwrap().forget();
        }
    }

    /// Waits until a handler is held at the gate.
    pub async fn entered(&self) {
        self.entered.notified().await;
    }

    pub fn open(&self) {
        self.open.add_permits(1);
    }
}
