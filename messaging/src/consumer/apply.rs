//! One transaction: record the event ids, apply the new ones, commit.

use std::collections::HashSet;

use ates_schemas::ReceivedEvent;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Handler, HandlerError, Position};

/// Applies the events this consumer has not applied before, in one transaction with their
/// dedupe records (and the durable consumer's `position`, when it has one), and returns how many
/// were new. Without a `consumer` key every event is handed over (minus copies within the batch)
/// and the handler dedupes itself.
pub(crate) async fn apply<H: Handler>(
    pool: &PgPool,
    consumer: Option<&str>,
    handler: &H,
    events: &[&ReceivedEvent],
    position: Option<(&str, &Position)>,
) -> Result<usize, HandlerError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
    let Some(consumer) = consumer else {
        let mut fresh: HashSet<Uuid> = ids.into_iter().collect();
        let new = only(events.iter().copied(), &mut fresh);
        if !new.is_empty() {
            handler.handle(&mut tx, &new).await?;
        }
        if let Some((name, position)) = position {
            position.record(&mut tx, name).await?;
        }
        tx.commit().await?;
        return Ok(new.len());
    };
    let mut fresh: HashSet<Uuid> = sqlx::query_scalar!(
        "INSERT INTO processed_events (consumer, event_id)
         SELECT $1, id FROM unnest($2::uuid[]) AS id
         ON CONFLICT DO NOTHING RETURNING event_id",
        consumer,
        &ids,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let new = only(events.iter().copied(), &mut fresh);
    if !new.is_empty() {
        handler.handle(&mut tx, &new).await?;
    }
    if let Some((name, position)) = position {
        // Last, so the row is locked only for the commit (every instance records here).
        position.record(&mut tx, name).await?;
    }
    tx.commit().await?;
    for event in &new {
        let meta = &event.meta;
        tracing::debug!(consumer, event_id = %meta.event_id, event_name = %meta.event_name, correlation_id = ?meta.correlation_id, "applied");
    }
    Ok(new.len())
}

/// The events whose ids are in `fresh`, each once: the first copy takes its id out of the set.
pub(crate) fn only<'a>(
    events: impl Iterator<Item = &'a ReceivedEvent>,
    fresh: &mut HashSet<Uuid>,
) -> Vec<ReceivedEvent> {
    events.filter(|e| fresh.remove(&e.meta.event_id)).cloned().collect()
}
