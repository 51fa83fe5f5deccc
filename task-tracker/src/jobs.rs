//! Background work: forgetting old idempotency keys.

use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// Idempotency keys are honoured for at least this long.
pub const KEEP_IDEMPOTENCY_KEYS: Duration = Duration::from_secs(48 * 3600);

/// Deletes expired idempotency keys every hour until `shutdown`.
pub async fn expire_idempotency_keys(pool: PgPool, shutdown: CancellationToken) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every_hour.tick() => {}
        }
        let horizon = chrono::Utc::now() - chrono::Duration::from_std(KEEP_IDEMPOTENCY_KEYS).expect("fits");
        let expired = match pool.acquire().await {
            Ok(mut conn) => crate::idempotency::expire(&mut conn, horizon).await,
            Err(e) => Err(e.into()),
        };
        match expired {
            Ok(deleted) => tracing::debug!(deleted, "expired idempotency keys"),
            Err(e) => tracing::warn!("cannot expire idempotency keys: {e}"),
        }
    }
}
