//! Where a durable consumer stands in its stream, and the check that the stream still holds what
//! it was given there.
//!
//! JetStream keeps a durable consumer's state apart from the stream's messages. When a stream
//! loses a tail it had delivered (a power loss before its fsync) and comes back, the consumer
//! still stands beyond the stream's end, and it would skip whatever is published next into those
//! sequences: new events, or lost ones published again out of their old order. So before it
//! acknowledges anything, a consumer records the newest message it took (its sequence, event id
//! and time) in its own database; and before it takes anything on a new connection, it checks
//! that the stream still holds that event at that sequence. If the stream does not, the consumer
//! starts again from a while before that message's time (longer than the servers' fsync
//! interval, so the lost tail is behind it) and skips by event id what it already applied.
//!
//! Sequences then never decide whether an event is applied: the outbox auditor putting lost
//! events back into their old sequences only saves that second reading.

use std::time::Duration;

use async_nats::jetstream::{Message, stream};
use chrono::{DateTime, SubsecRound as _, Utc};
use sqlx::PgConnection;

/// The newest message a consumer took from its stream, recorded before any of it is
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// When the stream was created: a stream made again starts its sequences over.
    pub(crate) stream_created: DateTime<Utc>,
    pub(crate) sequence: i64,
    /// Its `Nats-Msg-Id` (the event id, as every outbox publishes it).
    pub(crate) message_id: Option<String>,
    /// When the stream stored it.
    pub(crate) published: DateTime<Utc>,
}

/// How long before the recorded message a consumer starts again when the stream lost it: more
/// than nats-server's default fsync interval (two minutes), so every message the stream can have
/// lost with it is after that time.
pub(crate) const LOSS_MARGIN: Duration = Duration::from_secs(5 * 60);

impl Position {
    /// The newest of `messages` (by stream sequence) in the stream created at `stream_created`.
    pub(crate) fn newest<'a>(
        stream_created: DateTime<Utc>,
        messages: impl IntoIterator<Item = &'a Message>,
    ) -> Option<Position> {
        let newest = messages
            .into_iter()
            .filter_map(|m| Some((m, m.info().ok()?)))
            .max_by_key(|(_, info)| info.stream_sequence)?;
        let (message, info) = newest;
        Some(Position {
            stream_created,
            sequence: i64::try_from(info.stream_sequence).ok()?,
            message_id: message_id(message.headers.as_ref()),
            published: info.published.trunc_subsecs(6),
        })
    }

    /// Records it for `consumer` unless a newer message of the same stream is recorded already.
    pub(crate) async fn record(&self, conn: &mut PgConnection, consumer: &str) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "INSERT INTO consumer_positions (consumer, stream_created, stream_seq, message_id, published_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (consumer) DO UPDATE SET stream_created = excluded.stream_created,
                 stream_seq = excluded.stream_seq, message_id = excluded.message_id,
                 published_at = excluded.published_at
             WHERE consumer_positions.stream_seq < excluded.stream_seq
                OR consumer_positions.stream_created <> excluded.stream_created",
            consumer,
            self.stream_created,
            self.sequence,
            self.message_id,
            self.published,
        )
        .execute(conn)
        .await?;
        Ok(())
    }

    /// What `consumer` recorded last, if anything since it last started again.
    pub(crate) async fn recorded(
        conn: &mut PgConnection,
        consumer: &str,
    ) -> Result<Option<Position>, sqlx::Error> {
        sqlx::query_as!(
            Position,
            r#"SELECT stream_created, stream_seq AS sequence, message_id, published_at AS published
               FROM consumer_positions WHERE consumer = $1"#,
            consumer,
        )
        .fetch_optional(conn)
        .await
    }

    /// Forgets what `consumer` recorded: it starts again, and records anew what it takes.
    pub(crate) async fn forget(conn: &mut PgConnection, consumer: &str) -> Result<(), sqlx::Error> {
        sqlx::query!("DELETE FROM consumer_positions WHERE consumer = $1", consumer).execute(conn).await?;
        Ok(())
    }

    /// Whether `stream` still holds this message where the consumer took it; if not, why not, in
    /// a sentence for the log. A message before the stream's first one counts as held when the
    /// stream's limits may have removed it.
    pub(crate) async fn lost_from(&self, stream: &stream::Stream) -> Result<Option<String>, crate::BoxError> {
        let info = stream.cached_info();
        if info.created.trunc_subsecs(6) != self.stream_created {
            return Ok(Some(format!("the stream was made again at {}", info.created)));
        }
        let sequence = u64::try_from(self.sequence).unwrap_or(0);
        let state = &info.state;
        if sequence > state.last_sequence {
            return Ok(Some(format!(
                "the stream ends at sequence {}, before {sequence}, which this consumer was given",
                state.last_sequence
            )));
        }
        let config = &info.config;
        let limited = config.max_bytes > 0 || config.max_messages > 0 || !config.max_age.is_zero();
        match stream.get_raw_message(sequence).await {
            Ok(message) if message_id(Some(&message.headers)) == self.message_id => Ok(None),
            Ok(_) => Ok(Some(format!("the stream holds another event at sequence {sequence}"))),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok((!(limited
                && sequence < state.first_sequence))
                .then(|| format!("the stream no longer has sequence {sequence}"))),
            Err(e) => Err(e.into()),
        }
    }

    /// When a consumer that starts again because of this position starts: `margin` before this
    /// message, or earlier at the first message its old durable consumer had not acknowledged
    /// (`ack_floor` is the sequence below which it had acknowledged every one), which may be
    /// waiting for a retry. Making the durable again forgets its retries, and every message the
    /// stream may have lost is later than either.
    pub(crate) async fn restart_time(
        &self,
        stream: &stream::Stream,
        margin: Duration,
        ack_floor: Option<u64>,
    ) -> Result<DateTime<Utc>, crate::BoxError> {
        let before = chrono::Duration::from_std(margin)
            .ok()
            .and_then(|margin| self.published.checked_sub_signed(margin))
            .unwrap_or(DateTime::UNIX_EPOCH);
        let first_unacknowledged = ack_floor.map(|floor| floor + 1).filter(|&next| {
            let sequence = u64::try_from(self.sequence).unwrap_or(0);
            next <= sequence && next <= stream.cached_info().state.last_sequence
        });
        let Some(next) = first_unacknowledged else { return Ok(before) };
        match stream.get_raw_message(next).await {
            Ok(message) => Ok(before.min(message.time)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(before),
            Err(e) => Err(e.into()),
        }
    }
}

fn message_id(headers: Option<&async_nats::HeaderMap>) -> Option<String> {
    headers?.get("Nats-Msg-Id").map(|v| v.as_str().to_owned())
}
