//! The dead-letter queue: messages a consumer could not apply, parked on the `DLQ` stream with
//! why, where from and who gave up, until someone re-drives them.

use async_nats::HeaderMap;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::stream::{RawMessageError, RawMessageErrorKind};
use async_nats::jetstream::{self, Message, consumer::pull, message::PublishMessage};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use uuid::Uuid;

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

/// What a parked message says of the event it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedEvent {
    pub id: Uuid,
    pub name: String,
    pub time: DateTime<Utc>,
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

/// Whether a read failed because there is no such message (or no such stream).
fn absent(error: &RawMessageError) -> bool {
    match error.kind() {
        RawMessageErrorKind::NoMessageFound => true,
        RawMessageErrorKind::JetStream(e) => e.error_code() == ErrorCode::STREAM_NOT_FOUND,
        _ => false,
    }
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
        // One park per consumer and message, even if this one is retried after a crash: by the
        // message's own id, not its sequence, which a stream that lost it gives to another.
        let id = match message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
            Some(message_id) => format!("{consumer}.{}.{}", info.stream, message_id.as_str()),
            None => format!("{consumer}.{}.seq.{}", info.stream, info.stream_sequence),
        };
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

    /// Re-drives parked message `sequence`: publishes the original message again on its subject,
    /// so the consumers of that subject get another try (those that applied it already skip it),
    /// then removes it from the DLQ. Only a message parked from `from` when given (a service
    /// re-drives only what came from its own stream). What is published is the original as its
    /// stream holds it at `Ates-Dlq-Stream`/`Ates-Dlq-Sequence`, and only when the parked copy is
    /// the same bytes: a parked message cannot put anything on a subject its producer did not.
    /// Re-driving one message twice (from the CLI and the UI at once, say) publishes it once.
    pub async fn redrive(&self, sequence: u64, from: Option<&str>) -> Result<Redriven, RedriveError> {
        if sequence == 0 {
            return Err(RedriveError::NotFound(sequence));
        }
        let dlq = self.js.get_stream_no_info(DLQ).await.map_err(|e| RedriveError::Nats(e.into()))?;
        let raw = match dlq.get_raw_message(sequence).await {
            Ok(raw) => raw,
            Err(e) if absent(&e) => return Err(RedriveError::NotFound(sequence)),
            Err(e) => return Err(RedriveError::Nats(e.into())),
        };
        let parked = Parked::read(sequence, raw.time, Some(&raw.headers), raw.payload);
        if let Some(own) = from
            && parked.stream != own
        {
            return Err(RedriveError::NotFromStream { sequence, stream: parked.stream, own: own.to_owned() });
        }
        if parked.stream.is_empty() || parked.stream_sequence == 0 {
            return Err(RedriveError::NoOrigin(sequence));
        }
        let gone = || RedriveError::OriginalGone {
            sequence,
            stream: parked.stream.clone(),
            at: parked.stream_sequence,
            event: parked.event().map_or_else(String::new, |e| format!(" (event {} of {})", e.id, e.time)),
        };
        let origin =
            self.js.get_stream_no_info(&parked.stream).await.map_err(|e| RedriveError::Nats(e.into()))?;
        let original = match origin.get_raw_message(parked.stream_sequence).await {
            Ok(original) => original,
            Err(e) if absent(&e) => return Err(gone()),
            Err(e) => return Err(RedriveError::Nats(e.into())),
        };
        if original.payload != parked.payload || original.subject.as_str() != parked.subject {
            return Err(RedriveError::Differs {
                sequence,
                stream: parked.stream,
                at: parked.stream_sequence,
            });
        }
        // The original's headers go with it (its trace context, say), but not JetStream's own.
        let mut publish = PublishMessage::build()
            .payload(original.payload)
            .header(headers::REDRIVEN_FROM, sequence.to_string().as_str())
            .message_id(format!("redrive.{sequence}"));
        for (name, values) in original.headers.iter() {
            if !AsRef::<str>::as_ref(name).starts_with("Nats-") {
                for value in values {
                    publish = publish.header(name.clone(), value.clone());
                }
            }
        }
        let subject = original.subject.to_string();
        let nats = |e: BoxError| RedriveError::Nats(e);
        let ack = self.js.send_publish(subject.clone(), publish).await.map_err(|e| nats(e.into()))?;
        ack.await.map_err(|e| nats(e.into()))?;
        self.discard(sequence).await.map_err(nats)?;
        let event_id = parked.event_id();
        tracing::info!(sequence, %subject, ?event_id, "re-drove a parked message");
        Ok(Redriven { sequence, subject, event_id })
    }

    /// Removes parked message `sequence` from the DLQ (`ates dlq discard`). Already gone counts
    /// as done: another re-drive or discard of it got there first.
    pub async fn discard(&self, sequence: u64) -> Result<(), BoxError> {
        let dlq = self.js.get_stream_no_info(DLQ).await?;
        if let Err(e) = dlq.delete_message(sequence).await {
            // The server answers a missing message and a failed delete alike: look again.
            match dlq.get_raw_message(sequence).await {
                Err(gone) if absent(&gone) => {}
                _ => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// The messages parked from `stream`, oldest first: at most `shown` of them, and whether
    /// there are more. Each consumer reads one stream, so its subject `dlq.<consumer>` holds
    /// only that stream's messages: the walk reads the first message of each subject to tell
    /// where it comes from, and then only the subjects of `stream`, one message at a time (no
    /// consumer on the DLQ is needed, only `STREAM.INFO` and `STREAM.MSG.GET`).
    pub async fn parked_from(&self, stream: &str, shown: usize) -> Result<(Vec<Parked>, bool), BoxError> {
        let dlq = self.js.get_stream_no_info(DLQ).await?;
        let mut subjects = match dlq.info_with_subjects("dlq.>").await {
            Ok(subjects) => subjects,
            Err(e) if e.to_string().contains("not found") => return Ok((Vec::new(), false)),
            Err(e) => return Err(e.into()),
        };
        let mut names = Vec::new();
        while let Some((subject, _)) = subjects.try_next().await? {
            names.push(subject);
        }
        let mut parked = Vec::new();
        for subject in names {
            let mut next = 1;
            let mut first = true;
            while parked.len() <= shown {
                let read = dlq.raw_message_builder().sequence(next).next_by_subject(subject.clone()).send();
                let raw = match read.await {
                    Ok(raw) => raw,
                    Err(e) if absent(&e) => break,
                    Err(e) => return Err(e.into()),
                };
                next = raw.sequence + 1;
                let message = Parked::read(raw.sequence, raw.time, Some(&raw.headers), raw.payload);
                if message.stream == stream {
                    parked.push(message);
                } else if first {
                    break; // another stream's consumer
                }
                first = false;
            }
        }
        parked.sort_by_key(|p| p.sequence);
        let more = parked.len() > shown;
        parked.truncate(shown);
        Ok((parked, more))
    }
}

/// What a re-drive published.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Redriven {
    /// The DLQ sequence it came from (now removed from the DLQ).
    pub sequence: u64,
    /// The subject it was published on again.
    pub subject: String,
    /// Its event id, when it is an event.
    pub event_id: Option<Uuid>,
}

/// Why a parked message was not re-driven.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    #[error("There is no message {0} on the DLQ: it may have been re-driven already. Reload the list.")]
    NotFound(u64),
    #[error(
        "DLQ message {sequence} came from {stream}, not from {own}: re-drive it where {stream}'s producer runs."
    )]
    NotFromStream { sequence: u64, stream: String, own: String },
    #[error(
        "DLQ message {0} does not say where it came from (no Ates-Dlq-Stream and Ates-Dlq-Sequence), so it cannot be re-driven: `ates dlq discard {0}` removes it."
    )]
    NoOrigin(u64),
    #[error(
        "DLQ message {sequence} came from {stream} #{at}{event}, which the stream no longer holds (past its retention), so it cannot be checked against the original: `ates republish` of the producer's outbox from just before that time sends it again, then `ates dlq discard {sequence}` removes the parked copy."
    )]
    OriginalGone { sequence: u64, stream: String, at: u64, event: String },
    #[error(
        "DLQ message {sequence} is not the message {stream} #{at} holds, so it is not re-driven: `ates dlq discard {sequence}` removes it if it is not needed."
    )]
    Differs { sequence: u64, stream: String, at: u64 },
    #[error("NATS did not answer: {0}. Try again when it is back.")]
    Nats(BoxError),
}

impl From<RedriveError> for ates_web::Problem {
    fn from(error: RedriveError) -> Self {
        let detail = error.to_string();
        match error {
            RedriveError::NotFound(_) => ates_web::Problem::not_found(detail),
            RedriveError::NoOrigin(_)
            | RedriveError::NotFromStream { .. }
            | RedriveError::OriginalGone { .. }
            | RedriveError::Differs { .. } => ates_web::Problem::conflict(detail),
            RedriveError::Nats(_) => ates_web::Problem::unavailable(detail),
        }
    }
}

impl Parked {
    /// The event id of the parked payload, when it is an event.
    pub fn event_id(&self) -> Option<Uuid> {
        self.event().map(|e| e.id)
    }

    /// The id, name and time of the parked event, read without validating the rest.
    pub fn event(&self) -> Option<ParkedEvent> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            event_id: Uuid,
            event_name: String,
            event_time: DateTime<Utc>,
        }
        let event: Envelope = serde_json::from_slice(&self.payload).ok()?;
        Some(ParkedEvent { id: event.event_id, name: event.event_name, time: event.event_time })
    }

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
