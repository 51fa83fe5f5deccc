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

/// Limits and durability of the streams; read from the environment by the services and
/// `ates streams`.
#[derive(Debug, Clone, clap::Args)]
pub struct StreamSettings {
    /// Copies of each stream in a NATS cluster (1 on a single server).
    #[arg(long = "stream-replicas", alias = "replicas", env = "ATES_STREAM_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate publish.
    #[arg(
        long = "stream-duplicate-window",
        alias = "duplicate-window",
        env = "ATES_STREAM_DUPLICATE_WINDOW",
        default_value = "2m",
        value_parser = humantime::parse_duration
    )]
    pub duplicate_window: Duration,
    /// Drop events older than this; 0 keeps them forever (replay needs the history).
    #[arg(
        long = "stream-max-age",
        alias = "max-age",
        env = "ATES_STREAM_MAX_AGE",
        default_value = "0s",
        value_parser = humantime::parse_duration
    )]
    pub max_age: Duration,
    /// Size cap per stream in bytes; -1 for none.
    #[arg(
        long = "stream-max-bytes",
        alias = "max-bytes",
        env = "ATES_STREAM_MAX_BYTES",
        default_value_t = -1,
        allow_negative_numbers = true
    )]
    pub max_bytes: i64,
}

impl Default for StreamSettings {
    /// The defaults declared above (as the environment may change them), not a second copy.
    fn default() -> Self {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("streams").no_binary_name(true));
        let matches =
            command.try_get_matches_from(Vec::<String>::new()).expect("the declared defaults parse");
        Self::from_arg_matches(&matches).expect("the declared defaults parse")
    }
}

/// Every stream's name.
pub const ALL: [&str; 4] = [ACCOUNTS, TASKS, ACCOUNTING, DLQ];

/// How often [`ensure`] asks before it gives up on a stream.
const ENSURE_ATTEMPTS: u32 = 5;

/// Creates each of the streams `names`, or updates it to `settings` if it exists. Safe to call
/// on every start.
pub async fn ensure(
    js: &jetstream::Context,
    settings: &StreamSettings,
    names: &[&str],
) -> Result<(), jetstream::context::CreateStreamError> {
    for (name, subjects) in STREAMS.iter().filter(|(name, _)| names.contains(name)) {
        let config = stream::Config {
            name: (*name).to_owned(),
            subjects: vec![(*subjects).to_owned()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            max_age: settings.max_age,
            max_bytes: settings.max_bytes,
            ..Default::default()
        };
        // In a cluster, instances starting together race to create the same stream, and a
        // request made while its creation is being agreed on can go unanswered: ask again.
        let mut attempt = 1;
        loop {
            match js.create_or_update_stream(config.clone()).await {
                Ok(_) => break,
                Err(e) if attempt < ENSURE_ATTEMPTS => {
                    tracing::warn!(
                        stream = name,
                        "creating or updating the stream failed (attempt {attempt}), retrying: {e}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
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
