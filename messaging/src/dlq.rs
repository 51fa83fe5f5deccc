//! The dead-letter queue: messages a consumer could not apply, parked on the `DLQ` stream with
//! why, where from and who gave up, until someone re-drives them.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Message, consumer::pull, message::PublishMessage};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::BoxError;
use crate::streams::DLQ;

/// Header names on parked messages.
pub mod headers {
    /// The kind of failure: `undecodable`, `unknown_event`, `invalid`, `handler_failed`,
    /// `rejected` or `deliveries_exhausted`.
    pub const REASON: &str = "Ates-Dlq-Reason";
    /// A sentence about the failure.
    pub const DETAIL: &str = "Ates-Dlq-Detail";
    /// The consumer that gave up.
    pub const CONSUMER: &str = "Ates-Dlq-Consumer";
    /// The stream the message came from.
    pub const STREAM: &str = "Ates-Dlq-Stream";
    /// The subject the message was published on.
    pub const SUBJECT: &str = "Ates-Dlq-Subject";
    /// The message's sequence in its stream.
    pub const SEQUENCE: &str = "Ates-Dlq-Sequence";
    /// How many times it had been delivered.
    pub const DELIVERIES: &str = "Ates-Dlq-Deliveries";
    /// The DLQ sequence a re-driven message came from.
    pub const REDRIVEN_FROM: &str = "Ates-Redriven-From";
}

/// Why a message was parked.
#[derive(Debug, Clone)]
pub struct ParkReason {
    /// A short, stable kind (see [`headers::REASON`]).
    pub kind: &'static str,
    /// What went wrong, in a sentence.
    pub detail: String,
}

impl ParkReason {
    /// A reason of `kind` with `detail`.
    pub fn new(kind: &'static str, detail: impl Into<String>) -> Self {
        ParkReason { kind, detail: detail.into() }
    }
}

/// A message on the DLQ.
#[derive(Debug, Clone)]
pub struct Parked {
    /// Its sequence in the DLQ stream; what `redrive` takes.
    pub sequence: u64,
    /// When it was parked.
    pub parked_at: DateTime<Utc>,
    /// The consumer that gave up.
    pub consumer: String,
    /// The kind of failure.
    pub reason: String,
    /// What went wrong.
    pub detail: String,
    /// The stream it came from.
    pub stream: String,
    /// The subject it was published on.
    pub subject: String,
    /// Its sequence in that stream.
    pub stream_sequence: u64,
    /// How many times it had been delivered.
    pub deliveries: i64,
    /// The original bytes.
    pub payload: Bytes,
}

/// Parks, lists and re-drives messages on the `DLQ` stream.
#[derive(Clone)]
pub struct Dlq {
    js: jetstream::Context,
}

/// Header values may not contain line breaks and should stay short.
fn header_value(text: &str) -> String {
    let flat: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    flat.chars().take(1000).collect()
}

/// How long a listing waits for the next parked message before it takes the list as complete.
const LIST_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

impl Dlq {
    /// The DLQ reached through `js`.
    pub fn new(js: jetstream::Context) -> Self {
        Dlq { js }
    }

    /// Publishes `message` to `dlq.<consumer>` with the reason and origin in its headers, and
    /// waits for JetStream to store it.
    pub async fn park(&self, consumer: &str, message: &Message, reason: &ParkReason) -> Result<(), BoxError> {
        let info = message.info()?;
        let mut headers = HeaderMap::new();
        headers.insert(headers::REASON, reason.kind);
        headers.insert(headers::DETAIL, header_value(&reason.detail).as_str());
        headers.insert(headers::CONSUMER, consumer);
        headers.insert(headers::STREAM, info.stream);
        headers.insert(headers::SUBJECT, message.subject.as_str());
        headers.insert(headers::SEQUENCE, info.stream_sequence.to_string().as_str());
        headers.insert(headers::DELIVERIES, info.delivered.to_string().as_str());
        // One park per consumer and message, even if this one is retried after a crash.
        let id = format!("{consumer}.{}.{}", info.stream, info.stream_sequence);
        let publish =
            PublishMessage::build().payload(message.payload.clone()).headers(headers).message_id(id);
        self.js.send_publish(format!("dlq.{consumer}"), publish).await?.await?;
        Ok(())
    }

    /// The parked messages, oldest first; only `consumer`'s when given.
    pub async fn list(&self, consumer: Option<&str>) -> Result<Vec<Parked>, BoxError> {
        let stream = self.js.get_stream(DLQ).await?;
        let ordered = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: consumer.map_or_else(|| "dlq.>".to_owned(), |c| format!("dlq.{c}")),
                ..Default::default()
            })
            .await?;
        let mut parked = Vec::new();
        if ordered.cached_info().num_pending == 0 {
            return Ok(parked);
        }
        let mut messages = ordered.messages().await?;
        // A message deleted while it is listed (a re-drive at the same time) never comes: stop
        // when nothing has come for a while instead of waiting for it.
        while let Ok(Some(message)) = tokio::time::timeout(LIST_IDLE, messages.next()).await {
            let message = message?;
            let info = message.info()?;
            let pending = info.pending;
            parked.push(Parked::read(
                info.stream_sequence,
                info.published,
                message.headers.as_ref(),
                message.payload.clone(),
            ));
            if pending == 0 {
                break;
            }
        }
        Ok(parked)
    }

    /// Publishes parked message `sequence` again on its original subject, so the consumers of
    /// that subject get another try (those that applied it already skip it), then removes it
    /// from the DLQ. Returns the subject it went to.
    pub async fn redrive(&self, sequence: u64) -> Result<String, BoxError> {
        let stream = self.js.get_stream(DLQ).await?;
        let raw = stream.get_raw_message(sequence).await?;
        let parked = Parked::read(sequence, raw.time, Some(&raw.headers), raw.payload);
        if parked.subject.is_empty() {
            return Err(format!("DLQ message {sequence} has no {} header", headers::SUBJECT).into());
        }
        let publish = PublishMessage::build()
            .payload(parked.payload)
            .header(headers::REDRIVEN_FROM, sequence.to_string().as_str())
            .message_id(format!("redrive.{sequence}"));
        self.js.send_publish(parked.subject.clone(), publish).await?.await?;
        stream.delete_message(sequence).await?;
        Ok(parked.subject)
    }
}

impl Parked {
    fn read(sequence: u64, parked_at: DateTime<Utc>, headers: Option<&HeaderMap>, payload: Bytes) -> Self {
        let get =
            |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str().to_owned()).unwrap_or_default();
        Parked {
            sequence,
            parked_at,
            consumer: get(headers::CONSUMER),
            reason: get(headers::REASON),
            detail: get(headers::DETAIL),
            stream: get(headers::STREAM),
            subject: get(headers::SUBJECT),
            stream_sequence: get(headers::SEQUENCE).parse().unwrap_or(0),
            deliveries: get(headers::DELIVERIES).parse().unwrap_or(0),
            payload,
        }
    }
}
