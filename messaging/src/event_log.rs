//! A producer's event log (its published outbox rows) and what a consumer recorded of it: what
//! `ates audit` compares to prove that every event reached every consumer.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

/// One event of a producer's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub event_id: Uuid,
    pub subject: String,
    /// When it was committed.
    pub created_at: DateTime<Utc>,
    /// When JetStream acknowledged it (last).
    pub published_at: DateTime<Utc>,
    /// Where the stream keeps it, if the relay recorded that.
    pub stream_seq: Option<i64>,
}

/// The events of the outbox in `pool`'s schema committed since `since` and acknowledged by
/// JetStream, oldest first.
pub async fn published_since(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<Published>, sqlx::Error> {
    sqlx::query_as!(
        Published,
        r#"SELECT event_id, subject, created_at, published_at AS "published_at!", stream_seq FROM outbox
           WHERE created_at >= $1 AND published_at IS NOT NULL ORDER BY id"#,
        since,
    )
    .fetch_all(pool)
    .await
}

/// How many events committed since `since` and before `before` JetStream has not acknowledged:
/// events that reach no consumer while they wait.
pub async fn unpublished(
    pool: &PgPool,
    since: DateTime<Utc>,
    before: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM outbox
           WHERE published_at IS NULL AND created_at >= $1 AND created_at < $2"#,
        since,
        before,
    )
    .fetch_one(pool)
    .await
}

/// Which of `ids` the consumer `consumer` has recorded as applied (in `pool`'s schema).
pub async fn recorded(pool: &PgPool, consumer: &str, ids: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "SELECT event_id FROM processed_events WHERE consumer = $1 AND event_id = ANY($2)",
        consumer,
        ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().collect())
}

/// Which of `ids` the current generation of the read model in `pool`'s schema has applied (see
/// `projection`): what a rebuilt read model holds, whatever its live consumer recorded before.
pub async fn projected(pool: &PgPool, ids: &[Uuid]) -> Result<HashSet<Uuid>, sqlx::Error> {
    let found = sqlx::query_scalar!(
        "SELECT event_id FROM projection_applied
         WHERE generation = (SELECT generation FROM projection_state) AND event_id = ANY($1)",
        ids,
    )
    .fetch_all(pool)
    .await?;
    Ok(found.into_iter().collect())
}
