//! `Idempotency-Key`s of task creation: a retried request gets the task it made the first time.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::{Error, Result};

/// Claims `key` for `account`'s request with `hash`, for the task `task_id` about to be made.
/// `false` when the key was claimed before.
pub async fn claim(
    tx: &mut PgConnection,
    account: Uuid,
    key: &str,
    hash: &[u8],
    task_id: Uuid,
    correlation: Uuid,
) -> Result<bool> {
    let claimed = sqlx::query_scalar!(
        "INSERT INTO idempotency_keys (account_id, key, request_hash, task_id, correlation_id)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT DO NOTHING RETURNING task_id",
        account,
        key,
        hash,
        task_id,
        correlation,
    )
    .fetch_optional(tx)
    .await?;
    Ok(claimed.is_some())
}

/// The task an earlier request with `key` made, and that request's correlation id, if it had
/// the same `hash`.
pub async fn earlier_task(
    conn: &mut PgConnection,
    account: Uuid,
    key: &str,
    hash: &[u8],
) -> Result<(Uuid, Option<Uuid>)> {
    let earlier = sqlx::query!(
        "SELECT request_hash, task_id, correlation_id FROM idempotency_keys WHERE account_id = $1 AND key = $2",
        account,
        key,
    )
    .fetch_one(conn)
    .await?;
    if earlier.request_hash != hash {
        return Err(Error::KeyReused);
    }
    Ok((earlier.task_id, earlier.correlation_id))
}

/// Forgets keys claimed before `horizon`; returns how many.
pub async fn expire(conn: &mut PgConnection, horizon: chrono::DateTime<chrono::Utc>) -> Result<u64> {
    let done =
        sqlx::query!("DELETE FROM idempotency_keys WHERE created_at < $1", horizon).execute(conn).await?;
    Ok(done.rows_affected())
}
