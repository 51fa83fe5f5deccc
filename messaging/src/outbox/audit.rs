//! The auditor: finds events a stream lost after acknowledging them, and has the relay publish
//! them again from the outbox.
//!
//! JetStream acknowledges a message once its replicas have it in memory; it reaches the disk at
//! the next fsync (every two minutes by default), so a power loss can drop acknowledged
//! messages, and a stream can be deleted or purged by mistake. The relay records the stream
//! sequence of every acknowledgement on its outbox row. The auditor compares: a stream created
//! at another time than last seen was made again and lost everything; otherwise every row
//! published since the last audit (less a margin longer than the fsync interval) must still be
//! at its sequence, with its event id. Whatever is not is marked unpublished, keeping the
//! sequence it had (`lost_seq`), and the relays send it again before anything else, in that
//! order; consumers skip what they already applied, by event id. (That consumers miss nothing
//! does not depend on the sequences coming back as they were: each checks its own place, see
//! `consumer::position`. Putting them back saves consumers reading the stream again.)

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull, stream};
use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::BoxError;
use crate::streams::StreamSettings;

/// What the auditor checks and how often.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The stream this outbox publishes to.
    pub stream: &'static str,
    /// How the stream is made again when it is gone.
    pub streams: StreamSettings,
    /// How often to audit (and once at start).
    pub interval: Duration,
    /// How far before the last audit publishes are checked again: longer than the servers'
    /// fsync interval, so what was acknowledged but not yet on disk at the last audit is
    /// checked once more after it is.
    pub margin: Duration,
    /// The name of the consumer it reads the stream with ([`crate::permissions::Bus::audit_reader`]).
    pub reader: String,
}

/// What one audit found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Published rows compared with the stream.
    pub checked: u64,
    /// Of those, how many the stream no longer had: marked for publishing again.
    pub lost: u64,
    /// Whether the stream had been deleted and made again since the last audit.
    pub recreated: bool,
}

/// Audits one schema's outbox against its stream.
pub struct Auditor {
    pool: PgPool,
    js: jetstream::Context,
    schema: String,
    settings: AuditSettings,
    gate: Arc<AuditGate>,
}

/// Holds the relay back after every (re)connection to NATS until an audit has run on it: what
/// a restarted server lost is found and published again into the sequences it lost before
/// anything new takes them, so a consumer that had been given those sequences finds its place
/// intact and need not read the stream again.
#[derive(Default)]
pub(crate) struct AuditGate {
    /// The client's connection count when the last successful audit began.
    audited_connects: AtomicU64,
    wake: Notify,
}

impl AuditGate {
    /// Whether `client` is connected and an audit has run since it connected; if not, asks for
    /// one. (While disconnected the client would buffer a publish and send it on reconnecting,
    /// before any audit.)
    pub(crate) fn open_for(&self, client: &async_nats::Client) -> bool {
        let connected = client.connection_state() == async_nats::connection::State::Connected;
        let open = connected
            && client.statistics().connects.load(Ordering::SeqCst)
                == self.audited_connects.load(Ordering::SeqCst);
        if !open {
            self.wake.notify_one();
        }
        open
    }
}

/// A published row: where the stream acknowledged it.
struct Published {
    id: i64,
    event_id: Uuid,
    stream_seq: i64,
    created_at: DateTime<Utc>,
}

impl Auditor {
    /// An auditor of the outbox in `schema`.
    pub fn new(pool: PgPool, js: jetstream::Context, schema: &str, settings: AuditSettings) -> Self {
        Auditor { pool, js, schema: schema.to_owned(), settings, gate: Arc::default() }
    }

    /// The gate the relay beside it waits at.
    pub(crate) fn gate(&self) -> Arc<AuditGate> {
        self.gate.clone()
    }

    /// Audits at once, then every interval and after every reconnection, until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let connects = self.js.client().statistics().connects.load(Ordering::SeqCst);
            let audited = self.audit().await;
            if audited.is_ok() {
                self.gate.audited_connects.store(connects, Ordering::SeqCst);
            }
            match audited {
                Ok(report) if report.lost > 0 => tracing::warn!(
                    schema = %self.schema,
                    stream = self.settings.stream,
                    lost = report.lost,
                    recreated = report.recreated,
                    "the stream lost acknowledged events; publishing them again from the outbox"
                ),
                Ok(report) => {
                    tracing::debug!(schema = %self.schema, checked = report.checked, "outbox audit")
                }
                Err(e) => {
                    tracing::warn!(schema = %self.schema, "outbox audit failed, trying again later: {e}")
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(self.settings.interval) => {}
                () = self.gate.wake.notified() => {}
            }
        }
    }

    /// Compares the outbox with the stream once, making the stream again if it is gone, and
    /// marks what it lost for publishing again.
    ///
    /// One instance at a time audits a schema; another waits for it to finish and then audits
    /// too (cheaply, as little was published since). It must not take the other's audit for its
    /// own: its relay would publish, before the lost rows are marked, into the sequences the
    /// stream lost.
    pub async fn audit(&self) -> Result<AuditReport, BoxError> {
        let name = self.settings.stream;
        let mut tx = self.pool.begin().await?;
        let lock = format!("ates_outbox_audit_{}", self.schema);
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", lock).execute(&mut *tx).await?;
        let started = sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(&mut *tx).await?;
        let last = sqlx::query!(
            "SELECT created, first_seq, last_seq, audited_at FROM outbox_audit WHERE stream = $1",
            name
        )
        .fetch_optional(&mut *tx)
        .await?;
        // The rows are read before the stream: every one of them was acknowledged before the
        // stream's state is, so one beyond its last sequence is lost, not just published.
        let since = last.as_ref().map(|last| last.audited_at - self.margin());
        let mut rows = self.published_since(&mut tx, since).await?;
        crate::streams::ensure(&self.js, &self.settings.streams, &[name]).await?;
        let mut stream = self.js.get_stream(name).await?;
        let info = stream.info().await?.clone();
        // The database keeps microseconds.
        let created = info.created.trunc_subsecs(6);
        let state = &info.state;
        let (first, newest) = (seq_number(state.first_sequence), seq_number(state.last_sequence));
        let recreated = last.as_ref().is_some_and(|last| last.created != created);
        let limited =
            info.config.max_bytes > 0 || info.config.max_messages > 0 || !info.config.max_age.is_zero();
        // A stream made again, gone back, emptied or cut at its start (when no limit drops
        // messages) may have lost anything the outbox still holds: check every row.
        let lost_older = last.as_ref().is_some_and(|last| {
            recreated
                || newest < last.last_seq
                || (state.messages == 0 && last.last_seq > 0)
                || (first > last.first_seq && !limited)
        });
        if lost_older && since.is_some() {
            rows = self.published_since(&mut tx, None).await?;
        }
        let lost: Vec<&Published> = if recreated {
            rows.iter().collect()
        } else {
            lost(&stream, &self.settings.reader, &info, &rows).await?
        };
        let (ids, sequences): (Vec<i64>, Vec<i64>) = lost.iter().map(|row| (row.id, row.stream_seq)).unzip();
        // Only rows still at the sequence found missing: another instance may have sent them since.
        sqlx::query!(
            "UPDATE outbox SET published_at = NULL, stream_seq = NULL, lost_seq = lost.sequence
             FROM unnest($1::bigint[], $2::bigint[]) AS lost (id, sequence)
             WHERE outbox.id = lost.id AND outbox.stream_seq = lost.sequence",
            &ids,
            &sequences,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO outbox_audit (stream, created, first_seq, last_seq, audited_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (stream) DO UPDATE SET created = excluded.created, first_seq = excluded.first_seq,
                 last_seq = excluded.last_seq, audited_at = excluded.audited_at",
            name,
            created,
            first,
            newest,
            started,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if !lost.is_empty() {
            super::marked_lost();
        }
        let report = AuditReport { checked: rows.len() as u64, lost: lost.len() as u64, recreated };
        if report.lost > 0 {
            metrics::counter!("ates_outbox_republished_total", "stream" => name).increment(report.lost);
        }
        Ok(report)
    }

    /// The published rows of this stream, since `since` (all without it), by sequence.
    async fn published_since(
        &self,
        tx: &mut sqlx::PgConnection,
        since: Option<DateTime<Utc>>,
    ) -> Result<Vec<Published>, sqlx::Error> {
        sqlx::query_as!(
            Published,
            r#"SELECT id, event_id, stream_seq AS "stream_seq!", created_at FROM outbox
               WHERE stream_seq IS NOT NULL AND ($1::timestamptz IS NULL OR published_at >= $1)
                 AND subject LIKE $2
               ORDER BY stream_seq"#,
            since,
            subject_pattern(self.settings.stream),
        )
        .fetch_all(tx)
        .await
    }

    fn margin(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.margin).unwrap_or(chrono::Duration::MAX)
    }
}

fn seq_number(sequence: u64) -> i64 {
    i64::try_from(sequence).unwrap_or(i64::MAX)
}

/// `LIKE` pattern of the subjects stored in `stream`.
fn subject_pattern(stream: &str) -> String {
    let subjects = crate::streams::STREAMS.iter().find(|(name, _)| *name == stream).map(|(_, s)| *s);
    subjects.unwrap_or(">").trim_end_matches('>').to_owned() + "%"
}

/// The rows (sorted by sequence) the stream no longer has at their sequence with their event id.
/// Rows before the stream's first message count as lost only where its limits cannot have
/// removed them: when it is empty, or it has no size limits and they are younger than its
/// maximum age.
async fn lost<'a>(
    stream: &stream::Stream,
    reader: &str,
    info: &stream::Info,
    rows: &'a [Published],
) -> Result<Vec<&'a Published>, BoxError> {
    let state = &info.state;
    let (first, last) = (state.first_sequence, state.last_sequence);
    let config = &info.config;
    let age_limit = chrono::Duration::from_std(config.max_age).ok().filter(|age| !age.is_zero());
    let evictable = |row: &Published| {
        state.messages > 0
            && (config.max_bytes > 0
                || config.max_messages > 0
                || age_limit.is_some_and(|age| row.created_at < Utc::now() - age))
    };
    let seq = |row: &Published| u64::try_from(row.stream_seq).unwrap_or(0);
    let mut lost: Vec<&Published> =
        rows.iter().filter(|row| (seq(row) < first && !evictable(row)) || seq(row) > last).collect();
    let kept: Vec<&Published> = rows.iter().filter(|row| (first..=last).contains(&seq(row))).collect();
    if let (Some(low), Some(high)) = (kept.first(), kept.last()) {
        let stored = message_ids(stream, reader, seq(low), seq(high)).await?;
        lost.extend(kept.into_iter().filter(|row| stored.get(&seq(row)) != Some(&row.event_id)));
    }
    lost.sort_by_key(|row| row.stream_seq);
    Ok(lost)
}

/// The event id (`Nats-Msg-Id`) of every message the stream has from sequence `low` to `high`,
/// read as headers only.
async fn message_ids(
    stream: &stream::Stream,
    reader: &str,
    low: u64,
    high: u64,
) -> Result<HashMap<u64, Uuid>, BoxError> {
    // One at a time (the audit holds its lock): one left over from an audit that failed goes first.
    let _ = stream.delete_consumer(reader).await;
    let ids = read_message_ids(stream, reader, low, high).await;
    let _ = stream.delete_consumer(reader).await;
    ids
}

async fn read_message_ids(
    stream: &stream::Stream,
    reader: &str,
    low: u64,
    high: u64,
) -> Result<HashMap<u64, Uuid>, BoxError> {
    let ordered = stream
        .create_consumer(pull::OrderedConfig {
            // Its own name: the producer's user may touch no other consumer of the stream.
            name: Some(reader.to_owned()),
            deliver_policy: DeliverPolicy::ByStartSequence { start_sequence: low },
            headers_only: true,
            ..Default::default()
        })
        .await?;
    let mut ids = HashMap::new();
    if ordered.cached_info().num_pending == 0 {
        return Ok(ids);
    }
    let mut messages = ordered.messages().await?;
    while let Some(message) = tokio::time::timeout(Duration::from_secs(10), messages.next()).await? {
        let message = message?;
        let info = message.info()?;
        let sequence = info.stream_sequence;
        let id =
            message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")).and_then(|v| v.as_str().parse().ok());
        if let Some(id) = id {
            ids.insert(sequence, id);
        }
        if sequence >= high || info.pending == 0 {
            break;
        }
    }
    Ok(ids)
}
