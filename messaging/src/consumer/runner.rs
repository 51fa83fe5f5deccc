//! The loop of a durable pull consumer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use async_nats::jetstream::{self, AckKind, Message, stream::Stream};
use ates_schemas::ReceivedEvent;
use chrono::{DateTime, SubsecRound as _, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::position::Position;
use super::{ConsumerSpec, Handler, HandlerError, apply};
use crate::backoff::{Backoff, redelivery_delay};
use crate::dlq::{Dlq, ParkReason};

/// How often a consumer waiting for messages looks whether NATS reconnected.
const RECONNECTION_WATCH: Duration = Duration::from_millis(100);

/// Runs one durable consumer: fetch a batch, validate, apply in one transaction, ack.
pub struct Consumer<H> {
    js: jetstream::Context,
    pool: PgPool,
    spec: ConsumerSpec,
    handler: Arc<H>,
    dlq: Dlq,
}

/// What became of a batch.
enum Outcome {
    /// Every message was acknowledged, handed back, scheduled for a retry or parked.
    Done,
    /// The database cannot do any work: these messages are still in hand, untried or failed
    /// only by the outage, to be applied once it is over.
    Held(Vec<Message>, HandlerError),
}

/// How a session ended.
enum Ended {
    Shutdown,
    /// After an outage: pull again.
    Resume,
}

impl<H: Handler> Consumer<H> {
    /// A consumer that applies `spec`'s messages with `handler` in `pool`'s schema.
    pub fn new(js: jetstream::Context, pool: PgPool, spec: ConsumerSpec, handler: Arc<H>) -> Self {
        let dlq = Dlq::new(js.clone());
        Consumer { js, pool, spec, handler, dlq }
    }

    /// Creates the durable consumer, or updates it to this spec. Where it starts stays as it is:
    /// one started again after its stream lost what it had been given starts at a time, and
    /// JetStream cannot change that.
    pub async fn ensure(&self) -> Result<PullConsumer, crate::BoxError> {
        self.ensure_on(&self.js.get_stream(&self.spec.stream).await?).await
    }

    async fn ensure_on(&self, stream: &Stream) -> Result<PullConsumer, crate::BoxError> {
        let starts = match stream.consumer_info(&self.spec.name).await {
            Ok(info) => info.config.deliver_policy,
            Err(e) if e.kind() == ConsumerInfoErrorKind::NotFound => DeliverPolicy::All,
            Err(e) => return Err(e.into()),
        };
        Ok(stream.create_consumer(self.config(starts)).await?)
    }

    /// Makes sure of the durable consumer, then checks that the stream still holds the newest
    /// message this consumer took (see `position`) and starts it again from before that message
    /// if not. One instance at a time, so they start it again once. Returns the consumer and
    /// when its stream was created.
    async fn start(&self) -> Result<(PullConsumer, DateTime<Utc>), crate::BoxError> {
        let name = &self.spec.name;
        let mut tx = self.pool.begin().await?;
        let lock = format!("ates_consumer_position_{name}");
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", lock).execute(&mut *tx).await?;
        let stream = self.js.get_stream(&self.spec.stream).await?;
        let created = stream.cached_info().created.trunc_subsecs(6);
        let mut consumer = self.ensure_on(&stream).await?;
        let recorded = Position::recorded(&mut tx, name).await?;
        if let Some(position) = recorded
            && let Some(why) = position.lost_from(&stream).await?
        {
            let ack_floor = consumer.info().await?.ack_floor.stream_sequence;
            let from = position.restart_time(&stream, self.spec.loss_margin, Some(ack_floor)).await?;
            tracing::warn!(consumer = %name, stream = %self.spec.stream, sequence = position.sequence, "the stream lost what this consumer was given ({why}); starting again from {from} and skipping what it applied");
            // A consumer's start cannot be changed: make it again.
            if let Err(e) = stream.delete_consumer(name).await {
                tracing::warn!(consumer = %name, "could not delete the consumer to start it again: {e}");
            }
            let starts = DeliverPolicy::ByStartTime { start_time: from };
            consumer = stream.create_consumer(self.config(starts)).await?;
            Position::forget(&mut tx, name).await?;
            metrics::counter!("ates_consumer_restarts_total", "consumer" => name.clone()).increment(1);
        }
        tx.commit().await?;
        Ok((consumer, created))
    }

    fn config(&self, deliver_policy: DeliverPolicy) -> pull::Config {
        pull::Config {
            durable_name: Some(self.spec.name.clone()),
            filter_subjects: self.spec.subjects.clone(),
            deliver_policy,
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.spec.ack_wait,
            // The runner parks after `max_deliveries` itself; the server never gives up.
            max_deliver: -1,
            max_ack_pending: 20_000,
            ..Default::default()
        }
    }

    /// Consumes until `shutdown`, then finishes the batch in hand and returns. Reconnects with
    /// backoff while NATS is unreachable.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(Ended::Shutdown) => break,
                Ok(Ended::Resume) => {}
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
    ) -> Result<Ended, crate::BoxError> {
        // The check holds for the connection it was made on: a batch that comes on a later one
        // waits for another check. (The first connection may come during the first check.)
        let connects = || self.js.client().statistics().connects.load(Ordering::SeqCst);
        let (consumer, created, checked) = loop {
            let before = connects();
            let (consumer, created) = self.start().await?;
            if connects() == before {
                break (consumer, created, before);
            }
        };
        // Ask for two batches at a time, so the next one is already here when this one is done.
        let mut messages = consumer
            .stream()
            .max_messages_per_batch(self.spec.batch_size * 2)
            .heartbeat(self.spec.pull_expiry / 6)
            .expires(self.spec.pull_expiry)
            .messages()
            .await?;
        tracing::info!(consumer = %self.spec.name, stream = %self.spec.stream, "consuming");
        // A reconnection ends the session even when nothing comes: what takes the sequences the
        // stream lost may be only what the server thinks it delivered already.
        let mut watch = tokio::time::interval(RECONNECTION_WATCH);
        loop {
            let first = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(Ended::Shutdown),
                first = messages.next() => first,
                _ = watch.tick() => {
                    if connects() != checked {
                        tracing::info!(consumer = %self.spec.name, "NATS reconnected; checking the stream before going on");
                        return Ok(Ended::Resume);
                    }
                    continue;
                }
            };
            let Some(first) = first else { return Err("the message stream ended".into()) };
            let (batch, error) =
                crate::batch::collect(first, &mut messages, self.spec.batch_size, self.spec.batch_linger)
                    .await;
            if !batch.is_empty() && connects() != checked {
                // The server may have come back without what this consumer was given: hand the
                // batch back, and check before anything is acknowledged.
                self.release(&batch.iter().collect::<Vec<_>>()).await;
                tracing::info!(consumer = %self.spec.name, "NATS reconnected; checking the stream before going on");
                return Ok(Ended::Resume);
            }
            if !batch.is_empty() {
                backoff.reset();
                metrics::histogram!("ates_consumer_batch_size", "consumer" => self.spec.name.clone())
                    .record(batch.len() as f64);
                if let Outcome::Held(held, error) = self.process(batch, created).await {
                    // A pull consumer is sent only what it asks for: stop asking while the
                    // database is out, so nothing times out and is redelivered meanwhile (each
                    // redelivery would count towards the DLQ). What was sent but not read yet
                    // comes again once after the outage.
                    drop(messages);
                    self.hold(held, error, shutdown, created).await;
                    return Ok(if shutdown.is_cancelled() { Ended::Shutdown } else { Ended::Resume });
                }
            }
            if let Some(error) = error {
                return Err(error.into());
            }
        }
    }

    /// Handles one batch: parks what cannot be decoded, applies the rest in one transaction,
    /// and applies the parts of a batch that fails the same way, down to the single events that
    /// fail on their own (see [`Consumer::apply_in_parts`]). The server is told the whole while
    /// that the messages not yet settled are in progress. Stops at the first sign that the
    /// database is out, handing back what is still to do.
    ///
    /// Before any message is acknowledged, the newest one taken is recorded (`stream_created` is
    /// its stream's creation time).
    async fn process(&self, messages: Vec<Message>, stream_created: DateTime<Utc>) -> Outcome {
        let mut valid: Vec<(Message, ReceivedEvent)> = Vec::with_capacity(messages.len());
        let mut exhausted = Vec::new();
        for message in messages {
            match ReceivedEvent::decode(&message.payload) {
                Ok(event) if deliveries(&message) > self.spec.max_deliveries => {
                    exhausted.push((message, event))
                }
                Ok(event) => valid.push((message, event)),
                Err(e) => self.park(&message, ParkReason::new(e.kind(), e.to_string()), stream_created).await,
            }
        }
        if let Err(error) = self.settle_exhausted(&exhausted, stream_created).await {
            let mut held: Vec<Message> = exhausted.into_iter().map(|(m, _)| m).collect();
            held.extend(valid.into_iter().map(|(m, _)| m));
            return Outcome::Held(held, error);
        }
        if valid.is_empty() {
            return Outcome::Done;
        }
        let batch: Vec<(&Message, &ReceivedEvent)> = valid.iter().map(|(m, e)| (m, e)).collect();
        let messages: Vec<&Message> = valid.iter().map(|(m, _)| m).collect();
        let settled = AtomicUsize::new(0);
        let applied = self.apply_in_parts(&batch, &settled, stream_created);
        match self.in_progress(&messages, &settled, applied).await {
            Ok(()) => Outcome::Done,
            Err((from, error)) => Outcome::Held(owned(valid.into_iter().skip(from)), error),
        }
    }

    /// Applies `batch` in one transaction and acknowledges it; when that fails, tries its parts
    /// the same way ([`Parts`]), down to single events, which fail on their own ([`Consumer::fail`]).
    /// So a bad event among n costs about 2·log2(n) transactions, and at worst the batch costs
    /// about one transaction an event. Events are tried in their order, and
    /// `settled` counts those at the front that are done with (acknowledged, retried later or
    /// parked). When the database is out, returns where the events still to do begin.
    async fn apply_in_parts(
        &self,
        batch: &[(&Message, &ReceivedEvent)],
        settled: &AtomicUsize,
        stream_created: DateTime<Utc>,
    ) -> Result<(), (usize, HandlerError)> {
        let mut parts = Parts::of(batch.len());
        while let Some(part) = parts.next() {
            settled.store(part.start, Ordering::Relaxed);
            let events = &batch[part.clone()];
            match self.attempt(events, stream_created).await {
                Ok(()) => self.ack(&events.iter().map(|(m, _)| *m).collect::<Vec<_>>()).await,
                Err(error @ HandlerError::Unavailable(_)) => return Err((part.start, error)),
                Err(error) => {
                    if let [alone] = events {
                        self.fail(*alone, error, stream_created).await;
                    } else {
                        tracing::debug!(consumer = %self.spec.name, "{} events failed together, trying them in parts: {error}", events.len());
                        metrics::counter!("ates_consumer_batch_splits_total", "consumer" => self.spec.name.clone())
                            .increment(1);
                    }
                    parts.failed(part);
                }
            }
        }
        settled.store(batch.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Messages delivered more often than allowed without an ack: acknowledged if their event
    /// was applied already (only the ack was lost), parked otherwise. Fails only when the
    /// database cannot tell.
    async fn settle_exhausted(
        &self,
        exhausted: &[(Message, ReceivedEvent)],
        stream_created: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        if exhausted.is_empty() {
            return Ok(());
        }
        let messages: Vec<(&Message, &ReceivedEvent)> = exhausted.iter().map(|(m, e)| (m, e)).collect();
        let done = self.ack_applied(&messages, stream_created).await?;
        for (message, _) in exhausted.iter().filter(|(_, e)| !done.contains(&e.meta.event_id)) {
            let detail = format!("delivered {} times without being acknowledged", deliveries(message));
            self.park(message, ParkReason::new("deliveries_exhausted", detail), stream_created).await;
        }
        Ok(())
    }

    /// Acknowledges those of `messages` whose event was applied already (by a delivery whose ack
    /// was lost, or by another instance meanwhile) and returns their event ids. Fails only when
    /// the database is unavailable; an event it cannot tell about counts as not applied.
    async fn ack_applied(
        &self,
        messages: &[(&Message, &ReceivedEvent)],
        stream_created: DateTime<Utc>,
    ) -> Result<HashSet<Uuid>, HandlerError> {
        let ids: Vec<Uuid> = messages.iter().map(|(_, e)| e.meta.event_id).collect();
        let done = match self
            .handler
            .recorded(&self.pool, &self.spec.name, &ids)
            .await
            .map_err(HandlerError::from)
        {
            Ok(done) => done,
            Err(error @ HandlerError::Unavailable(_)) => return Err(error),
            Err(_) => Default::default(),
        };
        let applied: Vec<&Message> =
            messages.iter().filter(|(_, e)| done.contains(&e.meta.event_id)).map(|(m, _)| *m).collect();
        self.took(stream_created, &applied).await?;
        self.ack(&applied).await;
        Ok(done)
    }

    /// Records the newest of `messages` as taken, before they are acknowledged outside a batch
    /// that records it itself.
    async fn took(&self, stream_created: DateTime<Utc>, messages: &[&Message]) -> Result<(), HandlerError> {
        let Some(position) = Position::newest(stream_created, messages.iter().copied()) else {
            return Ok(());
        };
        let mut conn = self.pool.acquire().await?;
        Ok(position.record(&mut conn, &self.spec.name).await?)
    }

    /// Holds messages through a database outage, however long: retries with backoff, one at a
    /// time after a few rounds (so one message the database cannot do in time does not hold the
    /// others), until none is left or `shutdown`, which hands them back (between attempts). The
    /// server is told every third of the ack wait that the held messages are in progress, on one
    /// clock for the whole outage: neither a backoff shorter than that nor a long round of single
    /// attempts lets the ack wait of a message waiting for its turn run out.
    async fn hold(
        &self,
        held: Vec<Message>,
        error: HandlerError,
        shutdown: &CancellationToken,
        stream_created: DateTime<Utc>,
    ) {
        // The held messages not being tried right now; the one being tried is told "in
        // progress" by `process`, which leaves out what it settles.
        let waiting = std::sync::Mutex::new(VecDeque::from(held));
        tokio::select! {
            () = self.retry_held(&waiting, error, shutdown, stream_created) => {}
            () = self.keep_in_progress(&waiting) => {}
        }
    }

    async fn retry_held(
        &self,
        waiting: &std::sync::Mutex<VecDeque<Message>>,
        mut error: HandlerError,
        shutdown: &CancellationToken,
        stream_created: DateTime<Utc>,
    ) {
        let lock = || locked(waiting);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        for round in 1.. {
            let delay = backoff.next_delay();
            let count = lock().len();
            tracing::warn!(consumer = %self.spec.name, round, "database unavailable, holding {count} message(s) and pulling no more, retrying in {delay:?}: {error}");
            let hand_back = async || {
                let all: Vec<Message> = lock().drain(..).collect();
                self.release(&all.iter().collect::<Vec<_>>()).await;
            };
            tokio::select! {
                () = shutdown.cancelled() => return hand_back().await,
                () = tokio::time::sleep(delay) => {}
            }
            // The round's messages are at the front, in order; those it tries and still holds go
            // to the back.
            let size = if round < 3 { count } else { 1 };
            let mut untried = count;
            while untried > 0 {
                if shutdown.is_cancelled() {
                    return hand_back().await;
                }
                let chunk: Vec<Message> = lock().drain(..size.min(untried)).collect();
                untried -= chunk.len();
                if let Outcome::Held(rest, e) = self.process(chunk, stream_created).await {
                    lock().extend(rest);
                    error = e;
                }
            }
            if lock().is_empty() {
                tracing::info!(consumer = %self.spec.name, "the database is back, resuming");
                return;
            }
        }
    }

    /// Tells the server every third of the ack wait that the messages in `waiting` are in
    /// progress, until dropped.
    async fn keep_in_progress(&self, waiting: &std::sync::Mutex<VecDeque<Message>>) {
        let every = self.progress_every();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let now: Vec<Message> = locked(waiting).iter().cloned().collect();
            tell_in_progress(&now).await;
        }
    }

    /// Applies events in one transaction; the newest message of the batch is recorded as taken in
    /// the same transaction. The caller tells the server meanwhile that they are in progress.
    async fn attempt(
        &self,
        batch: &[(&Message, &ReceivedEvent)],
        stream_created: DateTime<Utc>,
    ) -> Result<(), HandlerError> {
        let events: Vec<&ReceivedEvent> = batch.iter().map(|(_, e)| *e).collect();
        let (spans, causes) = self.traced(batch);
        let name = self.spec.name.as_str();
        let key = (!H::RECORDS_APPLIED).then_some(name);
        let position = Position::newest(stream_created, batch.iter().map(|(m, _)| *m));
        let work =
            apply(&self.pool, key, self.handler.as_ref(), &events, position.as_ref().map(|p| (name, p)));
        let new = crate::outbox::continuing(causes, work).await;
        drop(spans);
        let new = new?;
        let counter = |outcome: &'static str| metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => outcome);
        counter("applied").increment(new as u64);
        counter("duplicate").increment((events.len() - new) as u64);
        Ok(())
    }

    /// With traces exported: a span for each event of `batch` that carries a trace, continuing
    /// it for as long as the batch is applied, and the trace context each event's consequences
    /// continue (by the correlation id they inherit). Nothing otherwise.
    fn traced(&self, batch: &[(&Message, &ReceivedEvent)]) -> (Vec<tracing::Span>, HashMap<Uuid, String>) {
        use ates_web::telemetry::{TRACEPARENT, continue_trace, enabled, traceparent_of};
        let (mut spans, mut causes) = (Vec::new(), HashMap::new());
        if !enabled() {
            return (spans, causes);
        }
        for (message, event) in batch {
            let Some(parent) = message.headers.as_ref().and_then(|h| h.get(TRACEPARENT)) else { continue };
            let meta = &event.meta;
            let span = tracing::info_span!("apply", consumer = %self.spec.name, event_name = %meta.event_name, event_id = %meta.event_id, correlation_id = ?meta.correlation_id);
            continue_trace(&span, parent.as_str());
            if let (Some(correlation), Some(context)) = (meta.correlation_id, traceparent_of(&span)) {
                causes.insert(correlation, context);
            }
            spans.push(span);
        }
        (spans, causes)
    }

    /// Runs `work` while telling the server, well within every ack wait, that `messages` are
    /// still being worked on: a long batch or a long outage never has them redelivered. Those
    /// of them at the front that `settled` counts are left out: they are acknowledged, or handed
    /// back to come again after a delay, which "in progress" would replace with a whole ack wait.
    /// (One handed back just before a tick may still be told once, if its nak was still queued
    /// in the client when `settled` moved on.)
    async fn in_progress<T>(
        &self,
        messages: &[&Message],
        settled: &AtomicUsize,
        work: impl Future<Output = T>,
    ) -> T {
        let every = self.progress_every();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let mut work = std::pin::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                _ = ticks.tick() => {
                    let waiting = &messages[settled.load(Ordering::Relaxed).min(messages.len())..];
                    tell_in_progress(waiting.iter().copied()).await;
                }
            }
        }
    }

    /// How often messages being worked on are told to be in progress: a third of the ack wait.
    fn progress_every(&self) -> Duration {
        (self.spec.ack_wait / 3).max(Duration::from_millis(100))
    }

    async fn ack(&self, messages: &[&Message]) {
        for message in messages {
            if let Err(e) = message.ack().await {
                // The effect is committed; a redelivery will be skipped as a duplicate.
                tracing::debug!(consumer = %self.spec.name, "ack not sent: {e}");
            }
        }
    }

    /// Hands messages back for immediate redelivery (to another instance, or after restart).
    async fn release(&self, messages: &[&Message]) {
        for message in messages {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }

    /// A message failed on its own: retry later, or park it when it can never succeed. Failed
    /// on its last delivery, it is acknowledged instead if its event was applied meanwhile (by
    /// another instance, which makes this one fail on the event's key).
    async fn fail(
        &self,
        (message, event): (&Message, &ReceivedEvent),
        error: HandlerError,
        stream_created: DateTime<Utc>,
    ) {
        let delivered = deliveries(message);
        match error {
            HandlerError::Transient(e) if delivered < self.spec.max_deliveries => {
                let delay = redelivery_delay(delivered, self.spec.retry_initial, self.spec.retry_max);
                let (event_id, correlation_id) = envelope_ids(message);
                tracing::warn!(consumer = %self.spec.name, subject = %message.subject, %event_id, %correlation_id, "delivery {delivered} failed, retrying in {delay:?}: {e}");
                metrics::counter!("ates_consumer_events_total", "consumer" => self.spec.name.clone(), "outcome" => "retried").increment(1);
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            HandlerError::Transient(e) | HandlerError::Unavailable(e) => {
                let applied = self.ack_applied(&[(message, event)], stream_created).await;
                if applied.is_ok_and(|done| done.contains(&event.meta.event_id)) {
                    tracing::info!(consumer = %self.spec.name, subject = %message.subject, event_id = %event.meta.event_id, "applied meanwhile, acknowledged: {e}");
                    return;
                }
                let detail = format!("failed on delivery {delivered} of {}: {e}", self.spec.max_deliveries);
                self.park(message, ParkReason::new("handler_failed", detail), stream_created).await;
            }
            HandlerError::Rejected(reason) => {
                self.park(message, ParkReason::new("rejected", reason), stream_created).await;
            }
        }
    }

    /// Moves a message to the DLQ and terminates it, so the consumer moves on. If the DLQ (or the
    /// database, to record it as taken) is unreachable the message is redelivered later instead:
    /// nothing is dropped.
    async fn park(&self, message: &Message, reason: ParkReason, stream_created: DateTime<Utc>) {
        if let Err(e) = self.took(stream_created, &[message]).await {
            tracing::warn!(consumer = %self.spec.name, "cannot record a message as taken, it will be redelivered: {e}");
            let _ = message.ack_with(AckKind::Nak(Some(self.spec.retry_initial))).await;
            return;
        }
        match self.dlq.park(&self.spec.name, message, &reason).await {
            Ok(()) => {
                let (event_id, correlation_id) = envelope_ids(message);
                tracing::warn!(consumer = %self.spec.name, subject = %message.subject, %event_id, %correlation_id, reason = reason.kind, "parked on the DLQ: {}", reason.detail);
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

/// The parts of a batch still to try, the next last: always the rest of the batch, in order.
/// First the whole batch; a part that failed is followed by its parts ([`parts_after_failure`]).
struct Parts {
    stack: Vec<Range<usize>>,
    /// How many of the events before the next part failed on their own.
    failed_alone: usize,
}

impl Parts {
    fn of(len: usize) -> Self {
        #[expect(clippy::single_range_in_vec_init, reason = "a stack of ranges, the whole batch first")]
        Parts { stack: vec![0..len], failed_alone: 0 }
    }

    /// `part`, the one last taken, failed: alone, or to be tried again in parts.
    fn failed(&mut self, part: Range<usize>) {
        if part.len() == 1 {
            self.failed_alone += 1;
        } else {
            self.stack.extend(parts_after_failure(part, self.failed_alone).into_iter().rev());
        }
    }
}

impl Iterator for Parts {
    type Item = Range<usize>;

    /// The next part to try.
    fn next(&mut self) -> Option<Range<usize>> {
        self.stack.pop()
    }
}

/// The parts to try next, in their order, after the events of `part` (more than one) of a batch
/// failed together, `failed_alone` of the events before it having failed on their own.
///
/// Halving finds each bad event among m in about 2·log2(m) transactions, while trying each event
/// alone costs m. The events before the part, `failed_alone` of those `part.start` bad, tell
/// how many bad events it likely holds, and so which of the two costs less: halves while bad
/// events are rare, single events once they are common.
fn parts_after_failure(part: Range<usize>, failed_alone: usize) -> Vec<Range<usize>> {
    let halving_per_bad_event = 2 * part.len().ilog2() as usize;
    if failed_alone * halving_per_bad_event >= part.start.max(1) {
        part.map(|event| event..event + 1).collect()
    } else {
        let middle = part.start + part.len() / 2;
        vec![part.start..middle, middle..part.end]
    }
}

fn owned(items: impl IntoIterator<Item = (Message, ReceivedEvent)>) -> Vec<Message> {
    items.into_iter().map(|(message, _)| message).collect()
}

/// The event and correlation ids a message's payload names, for the log lines of messages that
/// failed ("" where it names none, or cannot be read).
fn envelope_ids(message: &Message) -> (String, String) {
    let payload: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
    let field = |name: &str| payload.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    (field("event_id"), field("correlation_id"))
}

fn deliveries(message: &Message) -> i64 {
    message.info().map(|info| info.delivered).unwrap_or(1)
}

/// The held messages, whether or not a panic poisoned their lock (nothing in it can be half done).
fn locked(waiting: &std::sync::Mutex<VecDeque<Message>>) -> std::sync::MutexGuard<'_, VecDeque<Message>> {
    waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Tells the server that `messages` are still being worked on. Bounded, so a NATS outage cannot
/// keep the work (and its locks) waiting.
async fn tell_in_progress<'a>(messages: impl IntoIterator<Item = &'a Message>) {
    let progress = futures::future::join_all(messages.into_iter().map(|m| m.ack_with(AckKind::Progress)));
    let _ = tokio::time::timeout(Duration::from_secs(1), progress).await;
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The transactions a batch of `n` events costs when those in `bad` fail whenever they are
    /// tried, walking its [`Parts`] as [`Consumer::apply_in_parts`] does.
    fn transactions(n: usize, bad: &BTreeSet<usize>) -> usize {
        let (mut parts, mut tried) = (Parts::of(n), 0);
        while let Some(part) = parts.next() {
            tried += 1;
            if bad.range(part.clone()).next().is_some() {
                parts.failed(part);
            }
        }
        tried
    }

    #[test]
    fn a_few_bad_events_are_found_by_halving() {
        // 1 + 2·log2(1024): the batch, then two parts a level.
        assert_eq!(transactions(1024, &BTreeSet::from([700])), 21);
        assert_eq!(transactions(1024, &BTreeSet::from([0])), 21);
        assert_eq!(transactions(1024, &BTreeSet::from([1023])), 21);
        let three = transactions(1000, &BTreeSet::from([10, 500, 990]));
        assert!(three <= 3 * 21, "three bad events among 1,000: {three} transactions");
    }

    #[test]
    fn many_bad_events_cost_about_a_transaction_each_not_two() {
        // Halving alone would try every part of every level: 2n - 1.
        for n in [2, 3, 32, 1000, 4000] {
            let all: BTreeSet<usize> = (0..n).collect();
            let every_other: BTreeSet<usize> = (0..n).step_by(2).collect();
            for (what, bad) in [("all", all), ("every other", every_other)] {
                let cost = transactions(n, &bad);
                assert!(cost <= n + 2 * n.ilog2() as usize + 2, "{what} of {n} bad: {cost} transactions");
            }
        }
    }

    #[test]
    fn parts_after_a_failure_cover_the_part_in_order() {
        for (part, failed_alone) in [(0..2, 0), (0..1000, 0), (10..17, 0), (500..1000, 1), (6..9, 3)] {
            let parts = parts_after_failure(part.clone(), failed_alone);
            assert!(parts.len() >= 2 && parts.iter().all(|p| !p.is_empty()), "{part:?}: {parts:?}");
            let covered: Vec<usize> = parts.into_iter().flatten().collect();
            assert_eq!(covered, part.collect::<Vec<_>>());
        }
    }
}
