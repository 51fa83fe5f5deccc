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
    let mut after = 0_i64;
    loop {
        let rows: Vec<OutboxRow> = sqlx::query_as!(
            OutboxRow,
            "SELECT id, event_id, subject, payload, traceparent FROM outbox
             WHERE created_at >= $1 AND created_at < $2 AND id > $3 ORDER BY id LIMIT 1000",
            from,
            to,
            after,
        )
        .fetch_all(pool)
        .await?;
        let Some(last) = rows.last() else { return Ok(stats) };
        after = last.id;
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
