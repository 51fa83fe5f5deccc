//! The transactional outbox: events are written in the caller's transaction and published by
//! the [`Relay`] after commit, so a state change and its events are never separated.

mod audit;
mod relay;
mod republish;

use ates_schemas::{Envelope, Event, Registry, RegistryError};
use sqlx::PgConnection;
use uuid::Uuid;

pub use audit::{AuditReport, AuditSettings, Auditor};
pub use relay::{Relay, RelayError, RelayRound, RelaySettings};
pub use republish::{RepublishStats, republish};

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
    subject: String,
    payload: Vec<u8>,
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
        let rows = envelopes.iter().map(validated).collect::<Result<Vec<Row>, _>>()?;
        for envelope in envelopes {
            tracing::debug!(event_id = %envelope.event_id, event_name = %envelope.event_name, correlation_id = ?envelope.correlation_id, "event recorded");
        }
        let (ids, subjects, payloads) = rows.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut ids, mut subjects, mut payloads), row| {
                ids.push(row.event_id);
                subjects.push(row.subject);
                payloads.push(row.payload);
                (ids, subjects, payloads)
            },
        );
        sqlx::query!(
            "INSERT INTO outbox (event_id, subject, payload)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[])",
            &ids,
            &subjects,
            &payloads,
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

fn validated<E: Event>(envelope: &Envelope<E>) -> Result<Row, RegistryError> {
    let value = serde_json::to_value(envelope).map_err(|e| RegistryError::Undecodable(e.to_string()))?;
    Registry::global().validate_value(E::NAME, E::VERSION, &value)?;
    Ok(Row {
        event_id: envelope.event_id,
        subject: E::subject(),
        payload: serde_json::to_vec(&value).expect("a JSON value serializes"),
    })
}
