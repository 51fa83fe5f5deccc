//! Idempotent durable consumers: batches in one transaction, dedupe by event id, ack after
//! commit, retries with backoff, and the DLQ for what can never be applied.

mod apply;
mod backlog;
mod position;
mod runner;

use std::collections::HashSet;
use std::time::Duration;

use ates_schemas::ReceivedEvent;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

pub(crate) use apply::{apply, only};
pub use backlog::{Backlog, wait_for_backlog};
pub(crate) use position::Position;
pub use runner::Consumer;

/// The error type handlers wrap their failures in.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The effect of events on a service's own state.
pub trait Handler: Send + Sync + 'static {
    /// Applies `events` inside the transaction `tx`. Every event is new to this consumer:
    /// duplicates were already filtered out, and the dedupe record commits with the effect
    /// (unless [`Handler::RECORDS_APPLIED`]: then each is new within the batch only, and the
    /// handler skips what it applied before). Events arrive in stream order, but the handler
    /// must reach the same state in any order.
    fn handle(
        &self,
        tx: &mut PgConnection,
        events: &[ReceivedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Whether the handler keeps its own record of the events it applied, by event id and in
    /// the transaction of their effect, and skips those it has. The consumer then keeps none
    /// (a second record per event would cost a row each and say nothing new); such a handler
    /// answers [`Handler::recorded`] from its own record.
    const RECORDS_APPLIED: bool = false;

    /// Which of `ids` the durable consumer `consumer` has applied with this handler: by default
    /// what the consumer recorded.
    fn recorded(
        &self,
        pool: &PgPool,
        consumer: &str,
        ids: &[Uuid],
    ) -> impl Future<Output = Result<HashSet<Uuid>, sqlx::Error>> + Send {
        crate::event_log::recorded(pool, consumer, ids)
    }
}

/// How a handler failed, which decides what happens to the message.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A dependency (the database) is unreachable: keep the batch and try again later without
    /// counting a delivery, so an outage never sends good events to the DLQ.
    #[error("unavailable: {0}")]
    Unavailable(#[source] BoxError),
    /// Failed this time: redeliver with backoff, and park after the last delivery.
    #[error("{0}")]
    Transient(#[source] BoxError),
    /// Can never succeed: park it now.
    #[error("rejected: {0}")]
    Rejected(String),
}

impl From<sqlx::Error> for HandlerError {
    fn from(error: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&error) {
            HandlerError::Unavailable(error.into())
        } else {
            HandlerError::Transient(error.into())
        }
    }
}

/// A durable consumer's identity and its delivery settings.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// The durable consumer name; also the key of its dedupe records. `[A-Za-z0-9_-]` only.
    pub name: String,
    /// The stream it reads.
    pub stream: String,
    /// The subjects it wants from that stream; all when empty.
    pub subjects: Vec<String>,
    /// The most messages applied in one transaction ([`DEFAULT_BATCH_SIZE`] unless configured).
    pub batch_size: usize,
    /// How long to wait for more messages to fill a batch once the first has arrived.
    pub batch_linger: Duration,
    /// After this many failed deliveries a message is parked.
    pub max_deliveries: i64,
    /// How long JetStream waits for an ack before redelivering.
    pub ack_wait: Duration,
    /// The redelivery delay after the first failure; doubles per failure.
    pub retry_initial: Duration,
    /// The longest redelivery delay.
    pub retry_max: Duration,
    /// How long one pull request waits for messages before it is renewed.
    pub pull_expiry: Duration,
    /// When the stream lost what this consumer was given, how long before the newest message it
    /// took it starts again: more than the servers' fsync interval (see `position`).
    pub loss_margin: Duration,
}

/// How many messages a consumer applies in one transaction unless configured otherwise. A batch
/// costs its handler's statements and one commit however many events it holds, so with a backlog
/// a larger one spends fewer round trips per event; it also holds its locks longer (measured in
/// BENCHMARKS.md, "Batches of a thousand").
pub const DEFAULT_BATCH_SIZE: u16 = 1000;

/// The most a batch may be configured to hold. A batch that fails is applied again in parts, at
/// worst about one transaction an event (once bad events are common), while the next batch
/// already fetched (the runner asks for two) waits within its 30 s ack wait. At a few milliseconds a
/// transaction, 4,000 of them fit, and two batches' worth stays well inside the consumer's
/// 20,000 unacknowledged messages.
pub const MAX_BATCH_SIZE: i64 = 4000;

/// How many messages a consumer applies at once, when it gives up on a message and how long it
/// waits between tries; read from the environment by every service.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct DeliverySettings {
    /// The most messages a consumer applies in one transaction.
    #[arg(id = "consumer_batch_size", long = "consumer-batch-size", env = "ATES_CONSUMER_BATCH_SIZE", default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u16).range(1..=MAX_BATCH_SIZE))]
    pub batch_size: u16,
    /// After this many failed deliveries a consumer parks a message on the DLQ.
    #[arg(id = "consumer_max_deliveries", long = "consumer-max-deliveries", env = "ATES_CONSUMER_MAX_DELIVERIES", default_value_t = 8, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub max_deliveries: i64,
    /// The redelivery delay after a message's first failure; it doubles per failure.
    #[arg(id = "consumer_retry_initial", long = "consumer-retry-initial", env = "ATES_CONSUMER_RETRY_INITIAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub retry_initial: Duration,
    /// The longest redelivery delay.
    #[arg(id = "consumer_retry_max", long = "consumer-retry-max", env = "ATES_CONSUMER_RETRY_MAX", default_value = "60s", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,
}

impl ConsumerSpec {
    /// This spec with `delivery`'s batch size, give-up and retry settings.
    pub fn with_delivery(mut self, delivery: DeliverySettings) -> Self {
        self.batch_size = usize::from(delivery.batch_size);
        self.max_deliveries = delivery.max_deliveries;
        self.retry_initial = delivery.retry_initial;
        self.retry_max = delivery.retry_max.max(delivery.retry_initial);
        self
    }

    /// A spec with the default settings.
    pub fn new(name: &str, stream: &str, subjects: &[&str]) -> Self {
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "consumer names are [A-Za-z0-9_-]+, got {name:?}"
        );
        ConsumerSpec {
            name: name.to_owned(),
            stream: stream.to_owned(),
            subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            batch_size: usize::from(DEFAULT_BATCH_SIZE),
            batch_linger: Duration::from_millis(10),
            max_deliveries: 8,
            ack_wait: Duration::from_secs(30),
            retry_initial: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            pull_expiry: Duration::from_secs(30),
            loss_margin: position::LOSS_MARGIN,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches, Parser};

    use super::{DEFAULT_BATCH_SIZE, DeliverySettings};

    #[derive(Parser)]
    struct Settings {
        #[command(flatten)]
        delivery: DeliverySettings,
    }

    #[test]
    fn the_batch_size_is_the_default_unless_configured_between_one_and_the_maximum() {
        // Whatever ATES_CONSUMER_BATCH_SIZE the tests run with.
        let command = Settings::command().mut_arg("consumer_batch_size", |arg| arg.env(None));
        let parse = |args: &[&str]| {
            let matches = command.clone().try_get_matches_from([&["service"], args].concat())?;
            Settings::from_arg_matches(&matches)
        };
        assert_eq!(parse(&[]).unwrap().delivery.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(parse(&["--consumer-batch-size", "250"]).unwrap().delivery.batch_size, 250);
        assert_eq!(parse(&["--consumer-batch-size", "4000"]).unwrap().delivery.batch_size, 4000);
        for refused in ["0", "4001", "many"] {
            let error = parse(&["--consumer-batch-size", refused]).err().expect(refused).to_string();
            assert!(error.contains("--consumer-batch-size"), "{refused}: {error}");
        }
    }
}
