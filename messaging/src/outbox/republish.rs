//! Re-publishing a time range of the event log, for a stream that lost its tail.

use async_nats::jetstream;
use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::relay::{OutboxRow, RelayError, publish_and_confirm};

/// What a republish did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepublishStats {
    /// Events JetStream stored again.
    pub stored: u64,
    /// Events JetStream still had (dropped as duplicates within its window).
    pub duplicates: u64,
}

/// Publishes every outbox row created in `[from, to)` again, published or not, in order, with
/// `Nats-Msg-Id = event_id`: JetStream drops the ones it still remembers, and consumers skip
/// any it stores twice. `on_batch` sees the running totals after each batch.
pub async fn republish(
    pool: &PgPool,
    js: &jetstream::Context,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    mut on_batch: impl FnMut(RepublishStats),
) -> Result<RepublishStats, RelayError> {
    let mut stats = RepublishStats::default();
    // The ids the range spans, from one pass over the (BRIN) time index: a range of old rows
    // may read most of the log, whose summaries widen as retention frees pages for new rows.
    // The batches then walk the primary key through that span and pick the range's rows
    // themselves: asked for the time range too, a generic plan would read the whole span again
    // for every batch.
    let span = sqlx::query!(
        "SELECT min(id) AS first, max(id) AS last
         FROM (SELECT id FROM outbox WHERE created_at >= $1 AND created_at < $2 OFFSET 0) AS in_range",
        from,
        to,
    )
    .fetch_one(pool)
    .await?;
    let (Some(first), Some(last)) = (span.first, span.last) else { return Ok(stats) };
    let mut after = first - 1;
    loop {
        let scanned = sqlx::query!(
            "SELECT id, event_id, subject, payload, traceparent, created_at FROM outbox
             WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 1000",
            after,
            last,
        )
        .fetch_all(pool)
        .await?;
        let Some(end) = scanned.last() else { return Ok(stats) };
        after = end.id;
        let rows: Vec<OutboxRow> = scanned
            .into_iter()
            .filter(|row| row.created_at >= from && row.created_at < to)
            .map(|row| OutboxRow {
                id: row.id,
                event_id: row.event_id,
                subject: row.subject,
                payload: row.payload,
                traceparent: row.traceparent,
            })
            .collect();
        let results = publish_and_confirm(js, rows).await;
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        if let Some(first) = results.iter().find_map(|(_, r)| r.clone().err()) {
            return Err(RelayError::Publish { failed, first });
        }
        for (_, stored) in results {
            if stored.is_ok_and(|s| s.duplicate) {
                stats.duplicates += 1;
            } else {
                stats.stored += 1;
            }
        }
        on_batch(stats);
    }
}
