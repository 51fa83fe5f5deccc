//! Waiting for asynchronous work by polling for its result.

use std::time::Duration;

/// Polls `check` every 20 ms until it returns `Some`, for up to 30 seconds; panics naming
/// `what` if it never does.
pub async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_with(what, Duration::from_secs(30), check).await
}

/// Like [`eventually`] with a custom deadline.
pub async fn eventually_with<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < until, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
