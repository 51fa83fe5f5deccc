//! One transaction: record the event ids, apply the new ones, commit.

use std::collections::HashSet;

use ates_schemas::ReceivedEvent;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Handler, HandlerError};

/// Applies the events this consumer has not applied before, in one transaction with their
/// dedupe records. Returns how many were new.
pub(crate) async fn apply<H: Handler>(
    pool: &PgPool,
    consumer: &str,
    handler: &H,
    events: &[&ReceivedEvent],
) -> Result<usize, HandlerError> {
    let mut tx = pool.begin().await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
    let mut fresh: HashSet<Uuid> = sqlx::query_scalar(
        "INSERT INTO processed_events (consumer, event_id)
         SELECT $1, id FROM unnest($2::uuid[]) AS id
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    // `remove` keeps only the first of several copies of one event within the batch.
    let new: Vec<ReceivedEvent> =
        events.iter().filter(|e| fresh.remove(&e.meta.event_id)).map(|e| (*e).clone()).collect();
    if !new.is_empty() {
        handler.handle(&mut tx, &new).await?;
    }
    tx.commit().await?;
    Ok(new.len())
}
