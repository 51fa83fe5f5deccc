//! Replay: run a handler over a stream's history, to rebuild a projection from events.

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use ates_schemas::ReceivedEvent;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;

use crate::BoxError;
use crate::consumer::{Handler, HandlerError, apply};

/// How long to wait for more messages to fill a batch.
const BATCH_LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// Where in the stream a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest message the stream still has.
    Beginning,
    /// The first message stored at or after this time.
    Time(DateTime<Utc>),
    /// The message with this stream sequence (or the next one after it).
    Sequence(u64),
}

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplaySpec {
    /// The stream to read.
    pub stream: String,
    /// The subjects wanted; all when empty.
    pub subjects: Vec<String>,
    /// Where to start.
    pub start: StartAt,
    /// The most events applied in one transaction.
    pub batch_size: usize,
    /// The dedupe key: events already recorded under it are skipped. Use a fresh key (or
    /// clear it) to rebuild from scratch. `None` leaves deduplication to the handler.
    pub dedupe_key: Option<String>,
}

/// How far a replay has come.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayProgress {
    /// Messages read so far.
    pub read: u64,
    /// Messages there were to read when the replay started.
    pub total: u64,
    /// Events handed to the handler: without copies, and without events the dedupe key has
    /// seen, if there is one (a projection skips what it already has itself).
    pub handled: u64,
    /// Messages skipped because they failed validation.
    pub invalid: u64,
    /// The stream sequence of the last message read (0 before the first).
    pub last_sequence: u64,
}

/// Reads the stream from `spec.start` to the message that was last when the replay began,
/// applying valid events with `handler` in batches; reports progress after every batch.
pub async fn replay<H: Handler>(
    js: &jetstream::Context,
    pool: &PgPool,
    spec: &ReplaySpec,
    handler: &H,
    mut on_progress: impl FnMut(ReplayProgress),
) -> Result<ReplayProgress, BoxError> {
    let stream = js.get_stream(&spec.stream).await?;
    let deliver_policy = match spec.start {
        StartAt::Beginning => DeliverPolicy::All,
        StartAt::Time(start_time) => DeliverPolicy::ByStartTime { start_time },
        StartAt::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
    };
    let ordered = stream
        .create_consumer(pull::OrderedConfig {
            filter_subjects: spec.subjects.clone(),
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut progress = ReplayProgress { total: ordered.cached_info().num_pending, ..Default::default() };
    on_progress(progress);
    if progress.total == 0 {
        return Ok(progress);
    }
    let mut messages = ordered.messages().await?;
    let mut caught_up = false;
    while !caught_up {
        let Some(first) = messages.next().await else {
            return Err("the stream ended before the replay caught up".into());
        };
        let (chunk, error) = crate::batch::collect(first, &mut messages, spec.batch_size, BATCH_LINGER).await;
        if let Some(error) = error {
            return Err(error.into());
        }
        let mut events = Vec::with_capacity(chunk.len());
        for message in chunk {
            progress.read += 1;
            let info = message.info()?;
            progress.last_sequence = info.stream_sequence;
            caught_up |= info.pending == 0;
            match ReceivedEvent::decode(&message.payload) {
                Ok(event) => events.push(event),
                Err(e) => {
                    progress.invalid += 1;
                    tracing::warn!(subject = %message.subject, "replay skips an invalid message: {e}");
                }
            }
        }
        let events: Vec<&ReceivedEvent> = events.iter().collect();
        progress.handled += apply_all(pool, spec.dedupe_key.as_deref(), handler, &events).await? as u64;
        on_progress(progress);
    }
    Ok(progress)
}

/// Applies a batch, retrying while the database is unreachable.
async fn apply_all<H: Handler>(
    pool: &PgPool,
    key: Option<&str>,
    handler: &H,
    events: &[&ReceivedEvent],
) -> Result<usize, BoxError> {
    let mut attempts = 0;
    loop {
        match apply(pool, key, handler, events, None).await {
            Ok(applied) => return Ok(applied),
            Err(HandlerError::Unavailable(e)) if attempts < 30 => {
                attempts += 1;
                tracing::warn!("database unavailable during replay, retrying: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}
