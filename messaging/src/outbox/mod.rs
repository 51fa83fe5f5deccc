//! The transactional outbox: events are written in the caller's transaction and published by
//! the [`Relay`] after commit, so a state change and its events are never separated.

mod audit;
pub mod indexes;
mod relay;
mod republish;

use ates_schemas::{Envelope, Event, Registry, RegistryError};
use sqlx::PgConnection;
use uuid::Uuid;

pub use audit::{AuditReport, AuditSettings, Auditor};
pub use relay::{Relay, RelayError, RelayRound, RelaySettings};
pub use republish::{RepublishStats, republish};

/// How many outbox writes this process has made; its relays watch it to look for new rows.
/// A write counts before its transaction commits, so a relay woken by it looks again a few
/// times, soon at first and then ever less often. (PostgreSQL's `NOTIFY` would wake it after
/// the commit, but serialises every notifying commit on one lock until its WAL is flushed.)
static WRITES: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Tells this process's relays that outbox rows were written (or marked for publishing again).
pub(crate) fn written() {
    WRITES.send_modify(|count| *count = count.wrapping_add(1));
}

/// What a relay watches for [`written`].
pub(crate) fn writes() -> tokio::sync::watch::Receiver<u64> {
    WRITES.subscribe()
}

/// How often this process's auditors marked rows the stream lost; its relays look for such rows
/// after each (and now and then for what another process's auditor marked).
static LOST_MARKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Tells this process's relays that rows were marked for publishing again.
pub(crate) fn marked_lost() {
    LOST_MARKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    written();
}

/// What a relay compares with the count it saw at its last look for lost rows.
pub(crate) fn lost_marks() -> u64 {
    LOST_MARKS.load(std::sync::atomic::Ordering::SeqCst)
}

/// Writes events of one producer into the outbox of the current schema.
#[derive(Debug, Clone, Copy)]
pub struct Outbox {
    producer: &'static str,
}

/// Why an event could not be written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The event does not satisfy its committed schema: a bug in the producer.
    #[error("refusing to write an invalid event: {0}")]
    Invalid(#[from] RegistryError),
    /// The insert failed; the caller's transaction should roll back.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One validated event, ready to insert.
struct Row {
    event_id: Uuid,
    event_name: &'static str,
    correlation_id: Option<Uuid>,
    subject: String,
    payload: Vec<u8>,
    traceparent: Option<String>,
}

tokio::task_local! {
    /// While a consumer applies events with traces exported: the trace context each event it
    /// produces continues, by the correlation id it inherits from the event that caused it.
    static CAUSES: std::collections::HashMap<Uuid, String>;
}

/// Runs `work` (a consumer applying events) so the events it records continue the traces in
/// `causes` (correlation id → `traceparent`).
pub(crate) async fn continuing<T>(
    causes: std::collections::HashMap<Uuid, String>,
    work: impl Future<Output = T>,
) -> T {
    CAUSES.scope(causes, work).await
}

/// The trace an event with `correlation_id` continues: the consumed event's that caused it,
/// else the current span's (a request), when traces are exported.
fn traceparent_for(correlation_id: Option<Uuid>) -> Option<String> {
    let caused =
        correlation_id.and_then(|id| CAUSES.try_with(|causes| causes.get(&id).cloned()).ok().flatten());
    caused.or_else(ates_web::telemetry::current_traceparent)
}

impl Outbox {
    /// An outbox for events produced by `producer` (the service name).
    pub const fn new(producer: &'static str) -> Self {
        Outbox { producer }
    }

    /// The producer name written into every envelope.
    pub fn producer(&self) -> &'static str {
        self.producer
    }

    /// Validates every envelope against its committed schema, then writes them all in one
    /// statement. Nothing is written if any is invalid.
    pub async fn add_all<E: Event>(
        &self,
        conn: &mut PgConnection,
        envelopes: &[Envelope<E>],
    ) -> Result<(), OutboxError> {
        self.write(conn, Events::default().with(envelopes)?).await
    }

    /// Writes `events`, of whatever kinds, in one statement.
    pub async fn write(&self, conn: &mut PgConnection, events: Events) -> Result<(), OutboxError> {
        // Logged once written, so a line never names an event that was refused.
        let logged: Vec<(Uuid, &str, Option<Uuid>)> = if tracing::enabled!(tracing::Level::DEBUG) {
            events.rows.iter().map(|r| (r.event_id, r.event_name, r.correlation_id)).collect()
        } else {
            Vec::new()
        };
        let (mut ids, mut subjects, mut payloads, mut traces) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for row in events.rows {
            ids.push(row.event_id);
            subjects.push(row.subject);
            payloads.push(row.payload);
            traces.push(row.traceparent);
        }
        sqlx::query!(
            "INSERT INTO outbox (event_id, subject, payload, traceparent)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])",
            &ids,
            &subjects,
            &payloads,
            &traces as &[Option<String>],
        )
        .execute(conn)
        .await?;
        for (event_id, event_name, correlation_id) in logged {
            tracing::debug!(%event_id, event_name, ?correlation_id, "event recorded");
        }
        written();
        Ok(())
    }
}

/// Events of any kinds for one outbox statement ([`Outbox::write`]), in the order they are
/// added, each validated against its committed schema as it is added.
#[derive(Default)]
pub struct Events {
    rows: Vec<Row>,
}

impl Events {
    /// These events and `envelopes` after them; an error if any of `envelopes` is invalid.
    pub fn with<E: Event>(mut self, envelopes: &[Envelope<E>]) -> Result<Self, OutboxError> {
        for envelope in envelopes {
            self.rows.push(validated(envelope)?);
        }
        Ok(self)
    }
}

fn validated<E: Event>(envelope: &Envelope<E>) -> Result<Row, RegistryError> {
    let value = serde_json::to_value(envelope).map_err(|e| RegistryError::Undecodable(e.to_string()))?;
    Registry::global().validate_value(E::NAME, E::VERSION, &value)?;
    Ok(Row {
        event_id: envelope.event_id,
        event_name: E::NAME,
        correlation_id: envelope.correlation_id,
        subject: E::subject(),
        payload: serde_json::to_vec(&value).expect("a JSON value serializes"),
        traceparent: traceparent_for(envelope.correlation_id),
    })
}
