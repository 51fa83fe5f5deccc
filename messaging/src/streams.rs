//! The JetStream streams of aTES, provisioned idempotently at start-up.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

/// `accounts.*` events from auth.
pub const ACCOUNTS: &str = "ACCOUNTS";
/// `tasks.*` events from the task tracker.
pub const TASKS: &str = "TASKS";
/// `accounting.*` events from accounting.
pub const ACCOUNTING: &str = "ACCOUNTING";
/// Parked messages that consumers could not apply.
pub const DLQ: &str = "DLQ";

/// Every stream with the subjects it captures.
pub const STREAMS: [(&str, &str); 4] =
    [(ACCOUNTS, "accounts.>"), (TASKS, "tasks.>"), (ACCOUNTING, "accounting.>"), (DLQ, "dlq.>")];

/// The stream that holds events of `event_name`, e.g. `TASKS` for `tasks.added`.
pub fn stream_of(event_name: &str) -> Option<&'static str> {
    let domain = event_name.split('.').next()?;
    STREAMS.iter().find(|(_, subjects)| subjects.strip_suffix(".>") == Some(domain)).map(|(name, _)| *name)
}

/// Limits and durability of the streams.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Copies kept in a cluster (1 on a single server).
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publish.
    pub duplicate_window: Duration,
    /// Drop messages older than this; zero keeps them forever (replay needs history).
    pub max_age: Duration,
    /// Size cap per stream in bytes; -1 for none.
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            max_bytes: -1,
        }
    }
}

/// Creates every stream, or updates it to `settings` if it exists. Safe to call on every start.
pub async fn ensure(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<(), jetstream::context::CreateStreamError> {
    for (name, subjects) in STREAMS {
        js.create_or_update_stream(stream::Config {
            name: name.to_owned(),
            subjects: vec![subjects.to_owned()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            max_age: settings.max_age,
            max_bytes: settings.max_bytes,
            ..Default::default()
        })
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn events_map_to_the_stream_of_their_domain() {
        assert_eq!(super::stream_of("tasks.added"), Some("TASKS"));
        assert_eq!(super::stream_of("accounting.payout_sent"), Some("ACCOUNTING"));
        assert_eq!(super::stream_of("accounts.created"), Some("ACCOUNTS"));
        assert_eq!(super::stream_of("billing.x"), None);
    }
}
