//! Projections: read models built only from events, which can be rebuilt from the streams
//! into fresh tables and swapped in while they keep answering.
//!
//! A projection's tables are partitioned by *generation*. Readers and live consumers use the
//! generation in `projection_state`; a rebuild replays every stream from the start into the
//! next generation (its own partitions), then, holding `projection_state` exclusively so live
//! batches wait, replays what arrived meanwhile, switches the generation and drops the old
//! partitions. Every generation dedupes by event id, so nothing applies twice across a swap.

use std::future::Future;
use std::sync::Arc;

use async_nats::jetstream;
use ates_schemas::ReceivedEvent;
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::db::Identifier;
use crate::permissions::Subscription;
use crate::replay::{ReplayProgress, ReplaySpec, StartAt, replay};
use crate::{BoxError, Handler, HandlerError};

/// The generation bookkeeping, applied to a projection's schema.
pub static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/projection");

/// A read model built from events.
pub trait Projection: Send + Sync + 'static {
    /// The tables of one generation: partitioned by `generation`, as created by the
    /// projection's migrations.
    const TABLES: &'static [&'static str];

    /// Applies `events` (each new to `generation`) to `generation`'s tables in `tx`. Must reach
    /// the same state whatever order the events come in.
    fn apply(
        &self,
        tx: &mut PgConnection,
        generation: i64,
        events: &[ReceivedEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// The generation readers should use.
pub async fn current_generation(conn: &mut PgConnection) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!("SELECT generation FROM projection_state").fetch_one(conn).await
}

/// A consistent read of the current generation: every query in the returned transaction sees
/// one snapshot, and no rebuild can switch or drop that generation until the transaction ends.
pub async fn read_current(
    pool: &PgPool,
) -> Result<(sqlx::Transaction<'static, sqlx::Postgres>, i64), sqlx::Error> {
    let mut tx = crate::db::begin_snapshot(pool).await?;
    // LOCK takes no snapshot: it waits out a swap that is committing, and holds off the next
    // swap's update; the snapshot is taken by the first query after it.
    sqlx::query!("LOCK TABLE projection_state IN SHARE MODE").execute(&mut *tx).await?;
    let generation = current_generation(&mut tx).await?;
    Ok((tx, generation))
}

/// Creates the partitions of the current generation if they do not exist yet.
pub async fn prepare<P: Projection>(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let generation = current_generation(&mut conn).await?;
    create_partitions::<P>(&mut conn, generation).await
}

fn partitioned_tables<P: Projection>() -> impl Iterator<Item = &'static str> {
    P::TABLES.iter().copied().chain(["projection_applied"])
}

async fn create_partitions<P: Projection>(
    conn: &mut PgConnection,
    generation: i64,
) -> Result<(), sqlx::Error> {
    for table in partitioned_tables::<P>() {
        let parent = Identifier::new(table).expect("projection tables are identifiers");
        let sql =
            format!("CREATE TABLE IF NOT EXISTS {{}} PARTITION OF {parent} FOR VALUES IN ({generation})");
        partition(table, generation).execute(conn, &sql).await?;
    }
    Ok(())
}

async fn drop_partitions<P: Projection>(conn: &mut PgConnection, generation: i64) -> Result<(), sqlx::Error> {
    for table in partitioned_tables::<P>() {
        partition(table, generation).execute(conn, "DROP TABLE IF EXISTS {}").await?;
    }
    Ok(())
}

/// The partition of `table` that holds `generation`.
fn partition(table: &str, generation: i64) -> Identifier {
    Identifier::new(format!("{table}_g{generation}")).expect("projection tables are identifiers")
}

/// Applies the events `generation` has not applied yet.
async fn apply_new<P: Projection>(
    tx: &mut PgConnection,
    projection: &P,
    generation: i64,
    events: &[ReceivedEvent],
) -> Result<(), HandlerError> {
    let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
    let mut fresh: std::collections::HashSet<Uuid> = sqlx::query_scalar!(
        "INSERT INTO projection_applied (generation, event_id) SELECT $1, unnest($2::uuid[])
         ON CONFLICT DO NOTHING RETURNING event_id",
        generation,
        &ids,
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    let new = crate::consumer::only(events.iter(), &mut fresh);
    if new.is_empty() {
        return Ok(());
    }
    projection.apply(tx, generation, &new).await
}

/// The live consumer's handler: applies to the current generation, waiting out a swap.
pub struct Live<P>(pub Arc<P>);

impl<P: Projection> Handler for Live<P> {
    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        let generation: i64 = sqlx::query_scalar!("SELECT generation FROM projection_state FOR SHARE")
            .fetch_one(&mut *tx)
            .await?;
        apply_new(tx, self.0.as_ref(), generation, events).await
    }

    /// Each generation records what it applied (`projection_applied`).
    const RECORDS_APPLIED: bool = true;

    /// What the current generation holds, whatever the consumer applied before a rebuild.
    async fn recorded(
        &self,
        pool: &PgPool,
        _consumer: &str,
        ids: &[Uuid],
    ) -> Result<std::collections::HashSet<Uuid>, sqlx::Error> {
        crate::event_log::projected(pool, ids).await
    }
}

/// A replay's handler: applies to one fixed generation.
struct Into<P> {
    projection: Arc<P>,
    generation: i64,
}

impl<P: Projection> Handler for Into<P> {
    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        // A replay batch need not wait for its own fsync: an interrupted replay is simply run
        // again, and the swap's synchronous commit flushes the WAL of every batch before it.
        sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
        apply_new(tx, self.projection.as_ref(), self.generation, events).await
    }
}

/// A stream a projection reads, the events it takes of it, and where a replay starts in it.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    /// The stream and its events, as the live consumer asks for them: a replay reads no
    /// more than the live consumer would have been given.
    pub from: Subscription,
    /// Where to start.
    pub start: StartAt,
}

impl Source {
    fn spec(&self) -> ReplaySpec {
        ReplaySpec {
            stream: self.from.stream.to_owned(),
            subjects: self.from.filter_subjects(),
            start: self.start,
            batch_size: 4000,
            dedupe_key: None,
        }
    }
}

/// What a rebuild or catch-up did, per stream.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The generation the events went into.
    pub generation: i64,
    /// Progress per stream, in the order of the sources.
    pub streams: Vec<(String, ReplayProgress)>,
}

/// Replays `sources` into the current generation: events it already has are skipped, so this
/// only adds what is missing (for example after a stream lost messages and got them back).
pub async fn catch_up<P: Projection>(
    js: &jetstream::Context,
    pool: &PgPool,
    projection: Arc<P>,
    sources: &[Source],
    mut on_progress: impl FnMut(&str, ReplayProgress),
) -> Result<Report, BoxError> {
    let generation = current_generation(&mut *pool.acquire().await?).await?;
    let mut report = Report { generation, streams: Vec::new() };
    let target = Into { projection, generation };
    for source in sources {
        let stream = source.from.stream;
        let progress = replay(js, pool, &source.spec(), &target, |p| on_progress(stream, p)).await?;
        report.streams.push((stream.to_owned(), progress));
    }
    Ok(report)
}

/// Rebuilds the projection from the start of every source into a fresh generation and swaps
/// it in; the current generation keeps answering until then. Replaying twice gives the same
/// state.
pub async fn rebuild<P: Projection>(
    js: &jetstream::Context,
    pool: &PgPool,
    projection: Arc<P>,
    sources: &[Subscription],
    on_progress: impl Fn(&str, ReplayProgress) + Sync,
) -> Result<Report, BoxError> {
    let old = current_generation(&mut *pool.acquire().await?).await?;
    let generation = old + 1;
    {
        let mut conn = pool.acquire().await?;
        drop_partitions::<P>(&mut conn, generation).await?; // leftovers of an interrupted rebuild
        create_partitions::<P>(&mut conn, generation).await?;
    }
    let target = Into { projection, generation };
    let mut report = Report { generation, streams: Vec::new() };
    for &from in sources {
        let source = Source { from, start: StartAt::Beginning };
        let progress = replay(js, pool, &source.spec(), &target, |p| on_progress(from.stream, p)).await?;
        report.streams.push((from.stream.to_owned(), progress));
    }
    // Live batches hold the state row shared: taking it exclusively waits for them and stops
    // new ones. Then replay what arrived meanwhile and switch; the switch waits for readers
    // of the old generation (`read_current`), and the old partitions are dropped after it.
    let mut swap = pool.begin().await?;
    sqlx::query!("SELECT generation FROM projection_state FOR UPDATE").fetch_one(&mut *swap).await?;
    for (&from, (_, progress)) in sources.iter().zip(&mut report.streams) {
        let since = Source { from, start: StartAt::Sequence(progress.last_sequence + 1) };
        let rest = replay(js, pool, &since.spec(), &target, |_| {}).await?;
        progress.read += rest.read;
        progress.handled += rest.handled;
        progress.invalid += rest.invalid;
        progress.last_sequence = progress.last_sequence.max(rest.last_sequence);
    }
    sqlx::query!("UPDATE projection_state SET generation = $1", generation).execute(&mut *swap).await?;
    swap.commit().await?;
    drop_partitions::<P>(&mut *pool.acquire().await?, old).await?;
    tracing::info!(generation, "rebuilt a projection and swapped it in");
    Ok(report)
}
