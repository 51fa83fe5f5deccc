//! The outbox's time indexes, rebuilt as BRIN without stopping the writers.
//!
//! `created_at` and `published_at` rise with the row's place in the table, so a BRIN index (the
//! range of times in each run of 128 pages) finds recent rows about as well as a B-tree, at a
//! fraction of the upkeep: each B-tree took an entry for every insert and every mark (3.5–7 s of
//! the mark's time in the 1M drain, 6 % of its WAL, and a third of the relay's rate on its own;
//! BENCHMARKS.md). Recent rows are read from about three times as many pages as before, since a
//! mark writes the row's new version into whatever page has room. A BRIN summary only ever
//! widens, so queries for *old* rows lose it once retention has freed pages that newer rows
//! fill: retention walks ids instead ([`super::Relay::delete_expired`]), and `republish` makes
//! one pass over the time range.
//!
//! A migration cannot make the change. A week of log takes a while to read, and a plain
//! `CREATE INDEX` stops every outbox write meanwhile. `CREATE INDEX CONCURRENTLY` does not, but it
//! waits for every older snapshot in the database, and sqlx migrates under one advisory lock
//! for the whole database: a service queued on that lock holds a snapshot while it waits, and
//! PostgreSQL ends the pair as a deadlock. So [`build`] runs once the migrations are done, in the
//! background, under a lock of its own that nobody blocks on. A build killed halfway leaves an
//! invalid index: the next one drops it and builds it again. Until the BRIN indexes are valid,
//! the B-trees stay, so queries are never left without an index. (A later migration that locks
//! the outbox while a first build runs can still deadlock with it; PostgreSQL cancels one of the
//! two: the build is then tried again, or that service fails to start and is started again.)
//!
//! An older version's retention asks for `created_at < horizon`: to go back to one, first put
//! its B-trees back (`CREATE INDEX CONCURRENTLY outbox_created_at ON outbox (created_at)` and
//! `CREATE INDEX CONCURRENTLY outbox_published ON outbox (published_at) WHERE stream_seq IS NOT
//! NULL`, in each service's schema).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, PgPool};

use crate::backoff::Backoff;

/// What the outbox's indexes become, in order: the B-trees go only once the BRIN indexes are in.
const STEPS: [Step; 4] = [
    Step::Build { index: "outbox_created_brin", column: "created_at" },
    Step::Build { index: "outbox_published_brin", column: "published_at" },
    Step::Drop("outbox_created_at"),
    Step::Drop("outbox_published"),
];

/// How often a build waits for another process's build of the same outbox to finish.
const LOCK_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Copy)]
enum Step {
    /// A BRIN index on one column.
    Build {
        index: &'static str,
        column: &'static str,
    },
    Drop(&'static str),
}

/// [`build`], tried again after every failure (the database restarting, the build losing a
/// deadlock to a migration, a pool that times out at a busy start) until it succeeds: the
/// B-trees answer meanwhile.
pub async fn build_in_background(pool: PgPool, schema: &'static str) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    while let Err(e) = build(&pool).await {
        let delay = backoff.next_delay();
        tracing::warn!(
            schema,
            "the outbox's BRIN time indexes could not be built, trying again in {delay:?}: {e}"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Brings the outbox of the pool's schema to its BRIN time indexes, if it is not there yet;
/// returns how many steps it took (none when it was there). Safe to run from every instance at
/// once: one builds while the others wait for it, and then find nothing left to do.
pub async fn build(pool: &PgPool) -> Result<usize, sqlx::Error> {
    if pending(&indexes(&mut *pool.acquire().await?).await?).is_empty() {
        return Ok(0);
    }
    // Its own connection: the lock is the session's, and must not go back to the pool with it.
    let mut conn = pool.acquire().await?.detach();
    while !sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_lock(hashtextextended('ates.outbox_indexes.' || current_schema(), 0)) AS "locked!""#
    )
    .fetch_one(&mut conn)
    .await?
    {
        tokio::time::sleep(LOCK_POLL).await;
    }
    let steps = run(&mut conn).await;
    conn.close().await?;
    steps
}

/// Takes the steps not yet taken, holding the lock.
async fn run(conn: &mut PgConnection) -> Result<usize, sqlx::Error> {
    let existing = indexes(conn).await?;
    let steps = pending(&existing);
    for &step in &steps {
        let started = Instant::now();
        match step {
            Step::Build { index, column } => {
                if existing.get(index) == Some(&false) {
                    tracing::warn!(
                        index,
                        "an earlier build of this outbox index stopped halfway; building it again"
                    );
                    drop_index(conn, index).await?;
                }
                tracing::info!(index, "building an outbox index, without blocking writes");
                let sql = format!("CREATE INDEX CONCURRENTLY {index} ON outbox USING brin ({column})");
                sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *conn).await?;
            }
            Step::Drop(index) => drop_index(conn, index).await?,
        }
        tracing::info!(index = step.index(), elapsed = ?started.elapsed(), "outbox index {}", step.past());
    }
    Ok(steps.len())
}

/// The steps `existing` still needs.
fn pending(existing: &HashMap<String, bool>) -> Vec<Step> {
    STEPS
        .into_iter()
        .filter(|step| match *step {
            Step::Build { index, .. } => existing.get(index) != Some(&true),
            Step::Drop(index) => existing.contains_key(index),
        })
        .collect()
}

/// The outbox's indexes, and whether each is valid (a concurrent build that was stopped
/// halfway leaves its index invalid).
async fn indexes(conn: &mut PgConnection) -> Result<HashMap<String, bool>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT c.relname AS "name!", i.indisvalid AS "valid!" FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'outbox'::regclass"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|row| (row.name, row.valid)).collect())
}

async fn drop_index(conn: &mut PgConnection, index: &'static str) -> Result<(), sqlx::Error> {
    let sql = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
    Ok(())
}

impl Step {
    fn index(self) -> &'static str {
        match self {
            Step::Build { index, .. } | Step::Drop(index) => index,
        }
    }

    fn past(self) -> &'static str {
        match self {
            Step::Build { .. } => "built",
            Step::Drop(_) => "dropped",
        }
    }
}
