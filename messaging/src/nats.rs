//! Connecting to NATS so that an unreachable server delays work instead of failing it.

use std::time::Duration;

use async_nats::jetstream;

/// Connects to `url`, retrying in the background when the server is not up yet and
/// reconnecting forever after it goes away.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50 << attempts.min(6)).min(Duration::from_secs(2))
        })
        .connect(url)
        .await
}

/// A JetStream context whose publishes wait at most `ack_timeout` for their acknowledgement.
pub fn jetstream(client: async_nats::Client, ack_timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(ack_timeout)
        .max_ack_inflight(20_000)
        .backpressure_on_inflight(true)
        .build(client)
}
