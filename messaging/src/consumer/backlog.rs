//! Waiting for a durable consumer to apply what its stream already holds.

use std::time::Duration;

use async_nats::jetstream;
use tokio::time::Instant;

/// What came of waiting for a consumer's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backlog {
    /// The stream held nothing to wait for.
    Empty,
    /// Everything the stream held when the wait began has been acknowledged.
    Applied { waited: Duration },
    /// The limit passed first; this many messages were still not acknowledged.
    Behind { pending: u64 },
}

/// Waits up to `limit` until the durable consumer `consumer` has acknowledged (applied or parked)
/// every message `stream` held when the wait began. An unreachable server or a consumer that
/// does not exist yet counts as not caught up.
pub async fn wait_for_backlog(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
    limit: Duration,
) -> Backlog {
    let started = Instant::now();
    let deadline = started + limit;
    let mut target = None;
    let mut pending = 0;
    loop {
        if let Ok(mut handle) = js.get_stream(stream).await {
            let last = match target {
                Some(last) => last,
                None => match handle.info().await {
                    Ok(info) => *target.insert(info.state.last_sequence),
                    Err(_) => 0,
                },
            };
            if target == Some(0) {
                return Backlog::Empty;
            }
            if let (Some(last), Ok(info)) = (target, handle.consumer_info(consumer).await) {
                let everything = info.num_pending == 0 && info.num_ack_pending == 0;
                if info.ack_floor.stream_sequence >= last || everything {
                    return Backlog::Applied { waited: started.elapsed() };
                }
                pending = last.saturating_sub(info.ack_floor.stream_sequence);
            } else {
                pending = last;
            }
        }
        if Instant::now() >= deadline {
            return Backlog::Behind { pending };
        }
        tokio::time::sleep(Duration::from_millis(100).min(limit)).await;
    }
}
