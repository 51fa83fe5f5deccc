//! The relay: moves committed outbox rows to JetStream and marks them published.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use futures::future::join_all;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::audit::{AuditGate, AuditSettings, Auditor};

/// The longest the relay waits for an audit after NATS reconnected.
const AUDIT_GATE_WAIT: Duration = Duration::from_secs(30);
/// While a backlog is published from the oldest end, how often the newest end looks again once
/// it has caught up.
const NEWEST_POLL: Duration = Duration::from_millis(10);
/// How often a relay looks for rows another process's auditor marked lost.
const LOST_POLL: Duration = Duration::from_secs(1);
/// After lost rows were held past [`RelaySettings::lost_lock_wait`], how long looks skip held ones.
const LOST_SKIP_LOCKED: Duration = Duration::from_secs(60);
use crate::backoff::Backoff;

/// How the relay batches, waits and cleans up.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Rows claimed and published per round trip.
    pub batch_size: i64,
    /// Published rows are kept this long as an event log for `republish`.
    pub retention: Duration,
    /// Rows retention looks at per statement.
    pub retention_batch: i64,
    /// The longest the relay goes without looking for rows: for rows written by another
    /// process (another instance of the service). After a write in this process, or a round
    /// that found rows, it looks again within a millisecond, then ever less often up to this.
    pub idle_poll: Duration,
    /// Whether, and how, to check that the stream still has what was published.
    pub audit: Option<AuditSettings>,
    /// The longest a round waits for lost rows another round holds (longer than a round takes,
    /// publishing and acknowledgements included). Past it, the rows are held by a transaction
    /// that does not end (a hung process): rounds then claim the lost rows nobody holds, for a
    /// while, so one stuck transaction cannot stop the outbox.
    pub lost_lock_wait: Duration,
}

impl RelaySettings {
    /// The relay of a service that keeps published rows for `retention` (`ATES_OUTBOX_RETENTION`).
    pub fn keeping(retention: Duration) -> Self {
        RelaySettings {
            batch_size: 1000,
            retention,
            retention_batch: 10_000,
            idle_poll: Duration::from_secs(1),
            audit: None,
            lost_lock_wait: Duration::from_secs(15),
        }
    }
}

/// Publishes a schema's outbox rows. Several relays may run at once: each claims its own rows.
#[derive(Clone)]
pub struct Relay {
    pool: PgPool,
    js: jetstream::Context,
    schema: String,
    settings: RelaySettings,
    lost: Arc<LostLooks>,
}

/// When a relay's rounds look for rows the stream lost, a query of its own: they are rare (a
/// server came back without a tail it had acknowledged), so not in every round. A round looks
/// before the relay's first, after this process's auditor marked rows, after the relay waited
/// for an audit (another instance's auditor may have marked them), while the last look found
/// some, and at least every [`LOST_POLL`] for what another process's auditor marked.
#[derive(Default)]
struct LostLooks(std::sync::Mutex<LastLook>);

#[derive(Default)]
struct LastLook {
    at: Option<tokio::time::Instant>,
    /// [`super::lost_marks`] when it began.
    marks: u64,
    found: bool,
    /// Until when looks skip lost rows another transaction holds (after one waited too long).
    skip_locked_until: Option<tokio::time::Instant>,
}

impl LostLooks {
    fn due(&self, marks: u64) -> bool {
        let last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.found || last.marks != marks || last.at.is_none_or(|at| at.elapsed() >= LOST_POLL)
    }

    /// Makes the next round look.
    fn look_next(&self) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).at = None;
    }

    fn looked(&self, marks: u64, found: bool) {
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (last.at, last.marks, last.found) = (Some(tokio::time::Instant::now()), marks, found);
    }

    /// Whether looks skip lost rows another transaction holds.
    fn skipping_locked(&self) -> bool {
        let last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.skip_locked_until.is_some_and(|until| tokio::time::Instant::now() < until)
    }

    fn skip_locked_for(&self, period: Duration) {
        let mut last = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        last.skip_locked_until = Some(tokio::time::Instant::now() + period);
    }
}

/// A row claimed for publishing.
#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) event_id: Uuid,
    pub(crate) subject: String,
    pub(crate) payload: Vec<u8>,
    /// The trace context of what caused it, sent as the `traceparent` header.
    pub(crate) traceparent: Option<String>,
}

/// How JetStream acknowledged one publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    /// It already had the message (a publish repeated within the duplicate window).
    pub(crate) duplicate: bool,
    /// Where the stream keeps it.
    pub(crate) sequence: u64,
}

/// Publishes `rows` without waiting in between, then waits for every acknowledgement.
/// Returns, in order, how JetStream stored each one.
pub(crate) async fn publish_and_confirm(
    js: &jetstream::Context,
    rows: Vec<OutboxRow>,
) -> Vec<(i64, Result<Stored, String>)> {
    let mut pending: Vec<(i64, Uuid, Result<PublishAckFuture, String>)> = Vec::with_capacity(rows.len());
    for row in rows {
        let mut message =
            PublishMessage::build().payload(row.payload.into()).message_id(row.event_id.to_string());
        if let Some(traceparent) = &row.traceparent {
            message = message.header(ates_web::telemetry::TRACEPARENT, traceparent.as_str());
        }
        let sent = js.send_publish(row.subject, message).await.map_err(|e| e.to_string());
        pending.push((row.id, row.event_id, sent));
    }
    join_all(pending.into_iter().map(|(id, event_id, sent)| async move {
        let acked = match sent {
            Ok(ack) => ack
                .await
                .map(|ack| Stored { duplicate: ack.duplicate, sequence: ack.sequence })
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        if let Ok(stored) = &acked {
            tracing::debug!(%event_id, sequence = stored.sequence, duplicate = stored.duplicate, "event published");
        }
        (id, acked)
    }))
    .await
}

impl Relay {
    /// A relay for the outbox in `schema`, reachable through `pool`.
    pub fn new(pool: PgPool, js: jetstream::Context, schema: &str, settings: RelaySettings) -> Self {
        Relay { pool, js, schema: schema.to_owned(), settings, lost: Arc::default() }
    }

    /// Publishes until `shutdown`, looking for rows soon after every outbox write in this
    /// process. While NATS or the
    /// database is down it backs off and retries; rows stay in the outbox until acknowledged.
    /// With audit settings, the [`Auditor`] runs beside it.
    pub async fn run(self, shutdown: CancellationToken) {
        match self.settings.audit.clone() {
            Some(audit) => {
                let auditor = Auditor::new(self.pool.clone(), self.js.clone(), &self.schema, audit);
                let gate = auditor.gate();
                tokio::join!(auditor.run(shutdown.clone()), self.publish_until(shutdown, Some(gate)));
            }
            None => self.publish_until(shutdown, None).await,
        }
    }

    /// Waits until the auditor has run since the last (re)connection, for at most
    /// [`AUDIT_GATE_WAIT`]: a broken auditor must not stop publishing. After a wait the next
    /// round looks for lost rows first, whichever instance's auditor marked them.
    async fn wait_for_audit(&self, gate: &AuditGate, shutdown: &CancellationToken) {
        let deadline = tokio::time::Instant::now() + AUDIT_GATE_WAIT;
        let mut waited = false;
        while !gate.open_for(&self.js.client()) && !shutdown.is_cancelled() {
            waited = true;
            if tokio::time::Instant::now() > deadline {
                tracing::warn!(schema = %self.schema, "no outbox audit since NATS reconnected; publishing anyway");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if waited {
            self.lost.look_next();
        }
    }

    async fn publish_until(self, shutdown: CancellationToken, gate: Option<std::sync::Arc<AuditGate>>) {
        let mut writes = super::writes();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut look_again = Backoff::at_ceiling(Duration::from_millis(1), self.settings.idle_poll);
        let mut last_cleanup = tokio::time::Instant::now();
        while !shutdown.is_cancelled() {
            if let Some(gate) = &gate {
                self.wait_for_audit(gate, &shutdown).await;
            }
            let round = match self.publish_pending().await {
                Ok(round) if round.claimed >= self.batch_len() => {
                    self.publish_backlog_at(&shutdown, gate.as_deref()).await
                }
                round => round,
            };
            let delay = match round {
                Ok(round) => {
                    backoff.reset();
                    if round.claimed > 0 {
                        look_again.reset();
                    }
                    None
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(schema = %self.schema, "outbox relay failed, retrying in {delay:?}: {e}");
                    Some(delay)
                }
            };
            if last_cleanup.elapsed() > Duration::from_secs(600) {
                last_cleanup = tokio::time::Instant::now();
                if let Err(e) = self.delete_expired().await {
                    tracing::warn!(schema = %self.schema, "outbox cleanup failed: {e}");
                }
            }
            let wait = delay.unwrap_or_else(|| look_again.next_delay());
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(wait) => {}
                Ok(()) = writes.changed(), if delay.is_none() => {
                    // Counted before its commit: look once it has likely committed.
                    look_again.reset();
                    tokio::time::sleep(look_again.next_delay()).await;
                }
            }
        }
    }

    /// What its auditor checks, if it has one.
    pub fn audit_settings(&self) -> Option<&AuditSettings> {
        self.settings.audit.as_ref()
    }

    fn batch_len(&self) -> usize {
        usize::try_from(self.settings.batch_size).unwrap_or(usize::MAX)
    }

    /// Claims the oldest batch of unpublished rows, publishes them and marks the acknowledged
    /// ones. Rows whose publish failed stay unpublished and make the round an error.
    pub async fn publish_pending(&self) -> Result<RelayRound, RelayError> {
        self.publish_from(End::Oldest).await
    }

    /// Publishes a backlog: batch after batch from the oldest end until one comes back short
    /// (or `stop`), and beside them from the newest end, so what commits meanwhile (a
    /// completion after the thousands of assignments of a shuffle) does not wait for all of it.
    /// Order was never promised: consumers reach the same state in any order. The one
    /// exception, events the stream lost, every round publishes first (see [`Self::claim`]).
    pub async fn publish_backlog(&self, stop: &CancellationToken) -> Result<RelayRound, RelayError> {
        self.publish_backlog_at(stop, None).await
    }

    /// [`Self::publish_backlog`], both ends stopping as soon as `gate` closes (NATS reconnected
    /// and has not been audited since).
    async fn publish_backlog_at(
        &self,
        stop: &CancellationToken,
        gate: Option<&AuditGate>,
    ) -> Result<RelayRound, RelayError> {
        let done = stop.child_token();
        let open = || gate.is_none_or(|gate| gate.open_for(&self.js.client()));
        let oldest = async {
            let _done = done.clone().drop_guard();
            let mut total = RelayRound::default();
            while !done.is_cancelled() && open() {
                let round = self.publish_from(End::Oldest).await?;
                total = total.and(round);
                if round.claimed < self.batch_len() {
                    break;
                }
            }
            Ok::<_, RelayError>(total)
        };
        let newest = async {
            let mut total = RelayRound::default();
            while !done.is_cancelled() {
                let round = match open() {
                    true => self.publish_from(End::Newest).await?,
                    false => RelayRound::default(),
                };
                total = total.and(round);
                if round.claimed < self.batch_len() {
                    tokio::select! {
                        () = done.cancelled() => {}
                        () = tokio::time::sleep(NEWEST_POLL) => {}
                    }
                }
            }
            Ok::<_, RelayError>(total)
        };
        let (oldest, newest) = tokio::try_join!(oldest, newest)?;
        Ok(oldest.and(newest))
    }

    /// Claims a batch for one round: rows the stream lost, while there are any, else
    /// unpublished rows from `end`.
    ///
    /// Lost rows go back in the order the stream had them (`lost_seq`), before anything else,
    /// so they take back the sequences they had: a consumer that was given those sequences then
    /// finds its place intact, and need not read the stream again from before it (see
    /// `consumer::position`). They are claimed without skipping locked rows, so every round (of
    /// either end, of any instance) waits for the batch before it to be acknowledged and marked,
    /// and takes the next. Rounds look for them only when [`LostLooks`] says so.
    async fn claim(&self, tx: &mut sqlx::PgConnection, end: End) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let limit = self.settings.batch_size;
        let marks = super::lost_marks();
        if self.lost.due(marks) {
            let lost = self.claim_lost(&mut *tx).await?;
            self.lost.looked(marks, !lost.is_empty());
            if !lost.is_empty() {
                return Ok(lost);
            }
        }
        match end {
            End::Oldest => {
                sqlx::query_as!(
                    OutboxRow,
                    "SELECT id, event_id, subject, payload, traceparent FROM outbox
                     WHERE published_at IS NULL AND lost_seq IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                    limit,
                )
                .fetch_all(tx)
                .await
            }
            End::Newest => {
                sqlx::query_as!(
                    OutboxRow,
                    "SELECT id, event_id, subject, payload, traceparent FROM outbox
                     WHERE published_at IS NULL AND lost_seq IS NULL ORDER BY id DESC LIMIT $1 FOR UPDATE SKIP LOCKED",
                    limit,
                )
                .fetch_all(tx)
                .await
            }
        }
    }

    /// Lost rows in their order, waiting for those another round holds, but at most
    /// [`RelaySettings::lost_lock_wait`]: past that, and for a while after, the ones nobody holds.
    async fn claim_lost(&self, tx: &mut sqlx::PgConnection) -> Result<Vec<OutboxRow>, sqlx::Error> {
        let limit = self.settings.batch_size;
        if !self.lost.skipping_locked() {
            let mut waiting = sqlx::Connection::begin(&mut *tx).await?;
            let wait = format!("{}ms", self.settings.lost_lock_wait.as_millis().max(1));
            // For the rest of the round, which waits for no other lock.
            sqlx::query_scalar!("SELECT set_config('lock_timeout', $1, true)", wait)
                .fetch_one(&mut *waiting)
                .await?;
            let claimed = sqlx::query_as!(
                OutboxRow,
                "SELECT id, event_id, subject, payload, traceparent FROM outbox
                 WHERE lost_seq IS NOT NULL AND published_at IS NULL ORDER BY lost_seq LIMIT $1 FOR UPDATE",
                limit,
            )
            .fetch_all(&mut *waiting)
            .await;
            match claimed {
                Ok(rows) => {
                    waiting.commit().await?;
                    return Ok(rows);
                }
                Err(e) if crate::db::is_lock_timeout(&e) => {
                    waiting.rollback().await?;
                    tracing::warn!(schema = %self.schema, "lost outbox rows held for over {wait} by a transaction that does not end; publishing the others meanwhile");
                    self.lost.skip_locked_for(LOST_SKIP_LOCKED);
                }
                Err(e) => return Err(e),
            }
        }
        sqlx::query_as!(
            OutboxRow,
            "SELECT id, event_id, subject, payload, traceparent FROM outbox
             WHERE lost_seq IS NOT NULL AND published_at IS NULL ORDER BY lost_seq LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        .fetch_all(tx)
        .await
    }

    async fn publish_from(&self, end: End) -> Result<RelayRound, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows = self.claim(&mut tx, end).await?;
        if rows.is_empty() {
            return Ok(RelayRound::default());
        }
        let claimed = rows.len();
        let results = publish_and_confirm(&self.js, rows).await;
        let failed = results.iter().filter(|(_, r)| r.is_err()).count();
        let (published, sequences): (Vec<i64>, Vec<i64>) = results
            .iter()
            .filter_map(|(id, r)| {
                r.as_ref().ok().map(|stored| (*id, i64::try_from(stored.sequence).unwrap_or(i64::MAX)))
            })
            .unzip();
        let duplicates = results.iter().filter(|(_, r)| r.as_ref().is_ok_and(|s| s.duplicate)).count();
        sqlx::query!(
            "UPDATE outbox SET published_at = now(), stream_seq = acked.sequence, lost_seq = NULL
             FROM unnest($1::bigint[], $2::bigint[]) AS acked (id, sequence)
             WHERE outbox.id = acked.id",
            &published,
            &sequences,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match results.into_iter().find_map(|(_, r)| r.err()) {
            Some(first) => Err(RelayError::Publish { failed, first }),
            None => Ok(RelayRound { claimed, published: published.len(), duplicates }),
        }
    }

    /// Deletes published rows older than the retention horizon.
    ///
    /// It walks the log from its smallest ids, a batch per statement, and stops at the first
    /// batch with no expired row. It does not ask for `created_at < horizon` across the table:
    /// the time index is BRIN (see [`super::indexes`]), whose summaries widen once freed pages
    /// take new rows, and would read the whole log. Ids follow the order in which rows were
    /// written, not quite their `created_at` (a transaction's start), so a row written late by a
    /// long transaction, behind a whole batch of newer rows, outlives the horizon until they
    /// expire; none goes before it, and no single row (one dated ahead by a clock that jumped)
    /// stops the walk. Unpublished rows stay, however old.
    pub async fn delete_expired(&self) -> Result<u64, sqlx::Error> {
        let retention = chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        let horizon = chrono::Utc::now() - retention;
        let mut after = 0_i64;
        let mut deleted = 0;
        loop {
            // The conditions are the DELETE's own, so a row the auditor marks lost meanwhile is
            // checked again as marked, and stays.
            let batch = sqlx::query!(
                r#"WITH batch AS (SELECT id, created_at FROM outbox WHERE id > $1 ORDER BY id LIMIT $2),
                        expired AS (
                            DELETE FROM outbox USING batch
                            WHERE outbox.id = batch.id AND outbox.created_at < $3 AND outbox.published_at IS NOT NULL
                            RETURNING 1
                        )
                   SELECT (SELECT count(*) FROM expired) AS "deleted!",
                          (SELECT max(id) FROM batch) AS last,
                          (SELECT bool_or(created_at < $3) FROM batch) AS any_expired"#,
                after,
                self.settings.retention_batch,
                horizon,
            )
            .fetch_one(&self.pool)
            .await?;
            deleted += u64::try_from(batch.deleted).unwrap_or(0);
            match (batch.last, batch.any_expired) {
                (Some(last), Some(true)) => after = last,
                _ => return Ok(deleted),
            }
        }
    }
}

/// Which rows a round claims.
#[derive(Debug, Clone, Copy)]
enum End {
    Oldest,
    Newest,
}

/// What one relay round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayRound {
    /// Rows claimed from the outbox.
    pub claimed: usize,
    /// Rows acknowledged by JetStream and marked published.
    pub published: usize,
    /// Of those, how many JetStream already had (a publish repeated after a crash).
    pub duplicates: usize,
}

impl RelayRound {
    /// Both rounds' figures together.
    fn and(self, other: RelayRound) -> RelayRound {
        RelayRound {
            claimed: self.claimed + other.claimed,
            published: self.published + other.published,
            duplicates: self.duplicates + other.duplicates,
        }
    }
}

/// Why a relay round failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The outbox could not be read or updated.
    #[error("outbox database error: {0}")]
    Database(#[from] sqlx::Error),
    /// JetStream did not acknowledge some publishes; they stay in the outbox.
    #[error("{failed} publish(es) not acknowledged, e.g.: {first}")]
    Publish {
        /// How many were not acknowledged.
        failed: usize,
        /// The first error.
        first: String,
    },
}
