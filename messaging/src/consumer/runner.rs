//! The loop of a durable pull consumer.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, Message, consumer::pull};
use ates_schemas::ReceivedEvent;
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{ConsumerSpec, Handler, HandlerError, apply};
use crate::backoff::{Backoff, redelivery_delay};
use crate::dlq::{Dlq, ParkReason};

/// Runs one durable consumer: fetch a batch, validate, apply in one transaction, ack.
pub struct Consumer<H> {
    js: jetstream::Context,
    pool: PgPool,
    spec: ConsumerSpec,
    handler: Arc<H>,
    dlq: Dlq,
}

/// What came of trying to apply events.
enum Attempt {
    Applied,
    Failed(HandlerError),
    ShuttingDown,
}

impl<H: Handler> Consumer<H> {
    /// A consumer that applies `spec`'s messages with `handler` in `pool`'s schema.
    pub fn new(js: jetstream::Context, pool: PgPool, spec: ConsumerSpec, handler: Arc<H>) -> Self {
        let dlq = Dlq::new(js.clone());
        Consumer { js, pool, spec, handler, dlq }
    }

    /// Creates the durable consumer, or updates it to this spec.
    pub async fn ensure(&self) -> Result<jetstream::consumer::PullConsumer, crate::BoxError> {
        let stream = self.js.get_stream(&self.spec.stream).await?;
        let consumer = stream
            .create_consumer(pull::Config {
                durable_name: Some(self.spec.name.clone()),
                filter_subjects: self.spec.subjects.clone(),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: self.spec.ack_wait,
                // The runner parks after `max_deliveries` itself; the server never gives up.
                max_deliver: -1,
                max_ack_pending: 20_000,
                ..Default::default()
            })
            .await?;
        Ok(consumer)
    }

    /// Consumes until `shutdown`, then finishes the batch in hand and returns. Reconnects with
    /// backoff while NATS is unreachable.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(consumer = %self.spec.name, "consumer interrupted, resuming in {delay:?}: {e}");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        // Acks are fire-and-forget publishes: make sure the last ones leave before returning.
        let _ = self.js.client().flush().await;
        tracing::info!(consumer = %self.spec.name, "consumer stopped");
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), crate::BoxError> {
        let consumer = self.ensure().await?;
        // Ask for two batches at a time, so the next one is already here when this one is done.
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.spec.batch_size * 2)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await?;
        tracing::info!(consumer = %self.spec.name, stream = %self.spec.stream, "consuming");
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                first = messages.next() => first,
            };
            let Some(first) = first else { return Err("the message stream ended".into()) };
            let (batch, error) =
                crate::batch::collect(first, &mut messages, self.spec.batch_size, self.spec.batch_linger)
                    .await;
            if !batch.is_empty() {
                backoff.reset();
                metrics::histogram!("ates_consumer_batch_size", "consumer" => self.spec.name.clone())
                    .record(batch.len() as f64);
                self.process(batch, shutdown).await;
            }
            if let Some(error) = error {
                return Err(error.into());
            }
        }
    }

    /// Handles one batch: parks what cannot be decoded, applies the rest in one transaction,
    /// and falls back to one transaction per message when the batch fails.
    async fn process(&self, messages: Vec<Message>, shutdown: &CancellationToken) {
        let mut valid: Vec<(Message, ReceivedEvent)> = Vec::with_capacity(messages.len());
        for message in messages {
            let delivered = deliveries(&message);
            if delivered > self.spec.max_deliveries {
                let detail = format!("delivered {delivered} times without being acknowledged");
                self.park(&message, ParkReason::new("deliveries_exhausted", detail)).await;
                continue;
            }
            match ReceivedEvent::decode(&message.payload) {
                Ok(event) => valid.push((message, event)),
                Err(e) => self.park(&message, ParkReason::new(e.kind(), e.to_string())).await,
            }
        }
        if valid.is_empty() {
            return;
        }
        let batch: Vec<(&Message, &ReceivedEvent)> = valid.iter().map(|(m, e)| (m, e)).collect();
        match self.attempt(&batch, shutdown).await {
            Attempt::Applied => self.ack(&batch).await,
            Attempt::ShuttingDown => self.release(&batch).await,
            Attempt::Failed(error) if batch.len() == 1 => self.fail(batch[0].0, error).await,
            Attempt::Failed(error) => {
                tracing::debug!(consumer = %self.spec.name, "batch failed, applying one by one: {error}");
                for item in batch {
                    match self.attempt(&[item], shutdown).await {
                        Attempt::Applied => self.ack(&[item]).await,
                        Attempt::ShuttingDown => self.release(&[item]).await,
                        Attempt::Failed(error) => self.fail(item.0, error).await,
                    }
                }
            }
        }
    }

    /// Applies events, holding them while the database is unreachable instead of failing them.
    async fn attempt(&self, batch: &[(&Message, &ReceivedEvent)], shutdown: &CancellationToken) -> Attempt {
        let events: Vec<&ReceivedEvent> = batch.iter().map(|(_, e)| *e).collect();
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        loop {
            match apply(&self.pool, Some(&self.spec.name), self.handler.as_ref(), &events).await {
                Ok(new) => {
                    metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => "applied")
                        .increment(new as u64);
                    metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => "duplicate")
                        .increment((events.len() - new) as u64);
                    return Attempt::Applied;
                }
                Err(HandlerError::Unavailable(e)) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(consumer = %self.spec.name, "database unavailable, holding {} message(s), retrying in {delay:?}: {e}", batch.len());
                    for (message, _) in batch {
                        let _ = message.ack_with(AckKind::Progress).await;
                    }
                    tokio::select! {
                        () = shutdown.cancelled() => return Attempt::ShuttingDown,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(error) => return Attempt::Failed(error),
            }
        }
    }

    async fn ack(&self, batch: &[(&Message, &ReceivedEvent)]) {
        for (message, _) in batch {
            if let Err(e) = message.ack().await {
                // The effect is committed; a redelivery will be skipped as a duplicate.
                tracing::debug!(consumer = %self.spec.name, "ack not sent: {e}");
            }
        }
    }

    /// Hands messages back for immediate redelivery (to another instance, or after restart).
    async fn release(&self, batch: &[(&Message, &ReceivedEvent)]) {
        for (message, _) in batch {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }

    /// A message failed on its own: retry later, or park it when it can never succeed.
    async fn fail(&self, message: &Message, error: HandlerError) {
        let delivered = deliveries(message);
        match error {
            HandlerError::Transient(e) if delivered < self.spec.max_deliveries => {
                let delay = redelivery_delay(delivered, self.spec.retry_initial, self.spec.retry_max);
                tracing::warn!(consumer = %self.spec.name, subject = %message.subject, "delivery {delivered} failed, retrying in {delay:?}: {e}");
                metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => "retried").increment(1);
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            HandlerError::Transient(e) | HandlerError::Unavailable(e) => {
                let detail = format!("failed on delivery {delivered} of {}: {e}", self.spec.max_deliveries);
                self.park(message, ParkReason::new("handler_failed", detail)).await;
            }
            HandlerError::Rejected(reason) => {
                self.park(message, ParkReason::new("rejected", reason)).await;
            }
        }
    }

    /// Moves a message to the DLQ and terminates it, so the consumer moves on. If the DLQ is
    /// unreachable the message is redelivered later instead: nothing is dropped.
    async fn park(&self, message: &Message, reason: ParkReason) {
        match self.dlq.park(&self.spec.name, message, &reason).await {
            Ok(()) => {
                tracing::warn!(consumer = %self.spec.name, subject = %message.subject, reason = reason.kind, "parked on the DLQ: {}", reason.detail);
                metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => "parked").increment(1);
                let _ = message.ack_with(AckKind::Term).await;
            }
            Err(e) => {
                tracing::error!(consumer = %self.spec.name, "cannot park a message, it will be redelivered: {e}");
                let _ = message.ack_with(AckKind::Nak(Some(self.spec.retry_initial))).await;
            }
        }
    }
}

fn deliveries(message: &Message) -> i64 {
    message.info().map(|info| info.delivered).unwrap_or(1)
}
