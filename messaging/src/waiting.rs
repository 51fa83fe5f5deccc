//! Where a service's work waits: its outbox backlog, the lag of each of its durable consumers,
//! what they parked, and the size of the streams it provisions. Read every few seconds into
//! Prometheus gauges, and on demand for the operations view.

use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt as _;
use futures::future::join_all;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::backbone::Backbone;
use crate::permissions::Subscription;
use crate::streams::DLQ;

/// A snapshot of where a service's work waits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Waiting {
    /// The service (its schema).
    pub service: String,
    /// Its outbox, if it produces events.
    pub outbox: Option<OutboxBacklog>,
    /// Each of its durable consumers.
    pub consumers: Vec<ConsumerLag>,
    /// The streams it provisions: (name, messages held).
    pub streams: Vec<StreamSize>,
}

/// Committed events not yet acknowledged by JetStream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutboxBacklog {
    /// Unpublished rows.
    pub pending: i64,
    /// Age of the oldest of them (0 when none).
    pub oldest_seconds: f64,
}

/// One durable consumer: how far behind it is and what it parked.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ConsumerLag {
    /// The consumer's name.
    pub consumer: String,
    /// The stream it reads.
    pub stream: String,
    /// Messages not acknowledged yet: never delivered plus delivered and awaiting an ack.
    /// `None` when the server could not tell (the consumer does not exist yet, NATS is down).
    pub pending: Option<u64>,
    /// Messages parked on `dlq.<consumer>` (`None` when the server could not tell).
    pub parked: Option<u64>,
}

/// How many messages a stream holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StreamSize {
    pub stream: String,
    /// `None` when the server could not tell.
    pub messages: Option<u64>,
}

/// The longest each NATS read of a snapshot may take: while NATS is down the snapshot (and the
/// outbox gauges, which matter most then) must not wait for the client's own timeouts.
const NATS_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// `read`'s answer, or `None` when it fails or takes longer than [`NATS_READ_TIMEOUT`].
async fn bounded<T, E>(read: impl Future<Output = Result<T, E>>) -> Option<T> {
    tokio::time::timeout(NATS_READ_TIMEOUT, read).await.ok()?.ok()
}

impl Backbone {
    /// Where this service's work waits now. What the database or NATS cannot answer is left out
    /// (`None`) rather than failing the whole snapshot; the NATS reads run at once.
    pub async fn waiting(&self) -> Waiting {
        let outbox = match self.bus.produces {
            Some(_) => self.outbox_backlog().await.map_err(|e| tracing::debug!("outbox backlog: {e}")).ok(),
            None => None,
        };
        let consumers =
            join_all(self.bus.consumes.iter().map(|&Subscription { stream, consumer, .. }| async move {
                let (pending, parked) =
                    tokio::join!(self.consumer_pending(stream, consumer), self.parked(consumer));
                ConsumerLag { consumer: consumer.to_owned(), stream: stream.to_owned(), pending, parked }
            }));
        let streams = join_all(self.bus.provisions().into_iter().map(|stream| async move {
            let messages = bounded(async {
                let handle = self.js.get_stream_no_info(stream).await?;
                Ok::<_, crate::BoxError>(handle.get_info().await?.state.messages)
            })
            .await;
            StreamSize { stream: stream.to_owned(), messages }
        }));
        let (consumers, streams) = tokio::join!(consumers, streams);
        Waiting { service: self.schema.to_owned(), outbox, consumers, streams }
    }

    async fn outbox_backlog(&self) -> Result<OutboxBacklog, sqlx::Error> {
        let row = sqlx::query!(
            r#"SELECT count(*) AS "pending!",
                      (SELECT EXTRACT(EPOCH FROM now() - created_at)::float8 FROM outbox
                       WHERE published_at IS NULL ORDER BY id LIMIT 1) AS oldest
               FROM outbox WHERE published_at IS NULL"#
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(OutboxBacklog { pending: row.pending, oldest_seconds: row.oldest.unwrap_or(0.0).max(0.0) })
    }

    async fn consumer_pending(&self, stream: &str, consumer: &str) -> Option<u64> {
        bounded(unacknowledged(&self.js, stream, consumer)).await
    }

    async fn parked(&self, consumer: &str) -> Option<u64> {
        let subject = format!("dlq.{consumer}");
        bounded(async {
            let dlq = self.js.get_stream_no_info(DLQ).await?;
            let mut subjects = dlq.info_with_subjects(&subject).await?;
            let mut parked = 0;
            while let Some((name, count)) = subjects.try_next().await? {
                if name == subject {
                    parked += count as u64;
                }
            }
            Ok::<_, crate::BoxError>(parked)
        })
        .await
    }

    /// Refreshes this service's gauges every `ATES_GAUGES_INTERVAL` until `shutdown`:
    /// `ates_outbox_pending`, `ates_outbox_oldest_pending_seconds`, `ates_consumer_pending`,
    /// `ates_dlq_messages` and `ates_stream_messages` (see `ates_web::metrics::METRICS`).
    pub async fn report_waiting(self, shutdown: CancellationToken) {
        let interval = self.config.gauges_interval;
        loop {
            self.waiting().await.record();
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

impl Waiting {
    /// Sets the gauges from this snapshot; what could not be read keeps its last value.
    pub fn record(&self) {
        if let Some(outbox) = self.outbox {
            metrics::gauge!("ates_outbox_pending", "service" => self.service.clone())
                .set(outbox.pending as f64);
            metrics::gauge!("ates_outbox_oldest_pending_seconds", "service" => self.service.clone())
                .set(outbox.oldest_seconds);
        }
        for lag in &self.consumers {
            if let Some(pending) = lag.pending {
                metrics::gauge!("ates_consumer_pending", "consumer" => lag.consumer.clone())
                    .set(pending as f64);
            }
            if let Some(parked) = lag.parked {
                metrics::gauge!("ates_dlq_messages", "consumer" => lag.consumer.clone()).set(parked as f64);
            }
        }
        for size in &self.streams {
            if let Some(messages) = size.messages {
                metrics::gauge!("ates_stream_messages", "stream" => size.stream.clone()).set(messages as f64);
            }
        }
    }
}

/// How many of `stream`'s messages the durable `consumer` has not acknowledged yet: not
/// delivered, or delivered and still being applied.
pub async fn unacknowledged(
    js: &jetstream::Context,
    stream: &str,
    consumer: &str,
) -> Result<u64, crate::BoxError> {
    let stream = js.get_stream_no_info(stream).await?;
    let info = stream.consumer_info(consumer).await?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}
