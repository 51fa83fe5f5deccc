//! The outbox's BRIN time indexes, and what reads the log by time without a B-tree.

use std::collections::BTreeMap;
use std::time::Duration;

use ates_messaging::RelaySettings;
use ates_messaging::outbox::{self, indexes};
use sqlx::{Connection, PgPool};

use ates_testkit::TestPostgres;

use crate::support::{Env, SCHEMA};

/// The outbox's indexes and whether each is valid.
async fn outbox_indexes(pool: &PgPool) -> BTreeMap<String, bool> {
    sqlx::query_as(
        "SELECT c.relname::text, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         WHERE i.indrelid = 'outbox'::regclass",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

fn brin_shape() -> BTreeMap<String, bool> {
    [
        "outbox_pkey",
        "outbox_event_id_key",
        "outbox_unpublished",
        "outbox_lost",
        "outbox_created_brin",
        "outbox_published_brin",
    ]
    .into_iter()
    .map(|name| (name.to_owned(), true))
    .collect()
}

/// Puts back the B-trees the migrations made, as an outbox from before the BRIN indexes has them.
async fn back_to_btrees(pool: &PgPool) {
    sqlx::raw_sql(
        "DROP INDEX outbox_created_brin, outbox_published_brin;
         CREATE INDEX outbox_created_at ON outbox (created_at);
         CREATE INDEX outbox_published ON outbox (published_at) WHERE stream_seq IS NOT NULL;",
    )
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn an_outbox_gets_brin_time_indexes_and_a_build_stopped_halfway_is_done_again() {
    let env = Env::start().await;
    assert_eq!(outbox_indexes(&env.pool).await, brin_shape(), "a new outbox");
    assert_eq!(indexes::build(&env.pool).await.unwrap(), 0, "nothing left to do");

    back_to_btrees(&env.pool).await;
    env.commit_events(300).await;
    // A concurrent build waits for every older snapshot: one held past its lock timeout stops
    // it halfway, as a killed build would be, and leaves its index invalid.
    let mut reader = env.pool.acquire().await.unwrap();
    let mut snapshot = reader.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ").await.unwrap();
    sqlx::query("SELECT count(*) FROM outbox").execute(&mut *snapshot).await.unwrap();
    let mut builder = env.pool.acquire().await.unwrap();
    sqlx::query("SET lock_timeout = '200ms'").execute(&mut *builder).await.unwrap();
    let stopped =
        sqlx::query("CREATE INDEX CONCURRENTLY outbox_created_brin ON outbox USING brin (created_at)")
            .execute(&mut *builder)
            .await;
    assert!(stopped.is_err(), "the build waits for the open snapshot");
    snapshot.rollback().await.unwrap();
    sqlx::query("RESET lock_timeout").execute(&mut *builder).await.unwrap();
    assert_eq!(outbox_indexes(&env.pool).await.get("outbox_created_brin"), Some(&false));

    assert_eq!(indexes::build(&env.pool).await.unwrap(), 4, "both indexes built, both B-trees dropped");
    assert_eq!(outbox_indexes(&env.pool).await, brin_shape());
    env.relay().publish_pending().await.unwrap();
    assert_eq!(env.unpublished().await, 0);
}

#[tokio::test]
async fn instances_building_at_once_build_each_index_once() {
    let env = Env::start().await;
    back_to_btrees(&env.pool).await;
    env.commit_events(100).await;

    let (a, b, c) =
        tokio::join!(indexes::build(&env.pool), indexes::build(&env.pool), indexes::build(&env.pool));
    let steps = [a.unwrap(), b.unwrap(), c.unwrap()];
    assert_eq!(steps.iter().sum::<usize>(), 4, "one instance took every step, the others none: {steps:?}");
    assert_eq!(outbox_indexes(&env.pool).await, brin_shape());
}

#[tokio::test]
async fn a_build_that_fails_is_tried_again_until_it_succeeds() {
    let mut postgres = TestPostgres::start().await;
    let env = Env::with_database(postgres.create_database().await).await;
    back_to_btrees(&env.pool).await;
    env.commit_events(100).await;

    postgres.kill().await;
    let building = tokio::spawn(indexes::build_in_background(env.pool.clone(), SCHEMA));
    // Past the pool's acquire timeout (5 s): the first attempt has failed.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(!building.is_finished(), "the build is tried again while the database is down");
    postgres.restart().await;
    tokio::time::timeout(Duration::from_secs(60), building)
        .await
        .expect("built once the database is back")
        .unwrap();
    assert_eq!(outbox_indexes(&env.pool).await, brin_shape());
}

/// Sets `created_at` of the outbox rows at these places in id order (0-based) to `age` ago.
async fn age_rows(pool: &PgPool, places: &[i64], age: &str) {
    sqlx::query(
        "UPDATE outbox SET created_at = now() - $2::interval
         FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS place FROM outbox) AS numbered
         WHERE outbox.id = numbered.id AND numbered.place = ANY($1)",
    )
    .bind(places)
    .bind(age)
    .execute(pool)
    .await
    .unwrap();
}

async fn remaining_ids(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM outbox ORDER BY id").fetch_all(pool).await.unwrap()
}

#[tokio::test]
async fn retention_walks_the_log_by_id_in_batches_until_a_batch_has_nothing_expired() {
    let env = Env::start().await;
    env.commit_events(13).await;
    env.relay().publish_pending().await.unwrap();
    let ids = remaining_ids(&env.pool).await;
    // By place in id order: 0-6 are eight days old, and 3 of them was never published; 7-8 are
    // fresh; 9 is old but was written after them (a long transaction); 10-11 are fresh, and 12
    // is old again.
    age_rows(&env.pool, &[0, 1, 2, 3, 4, 5, 6, 9, 12], "8 days").await;
    sqlx::query("UPDATE outbox SET published_at = NULL, stream_seq = NULL WHERE id = $1")
        .bind(ids[3])
        .execute(&env.pool)
        .await
        .unwrap();

    let settings =
        RelaySettings { retention_batch: 2, ..RelaySettings::keeping(Duration::from_secs(7 * 86_400)) };
    let relay = ates_messaging::Relay::new(env.pool.clone(), env.js.clone(), SCHEMA, settings);
    assert_eq!(relay.delete_expired().await.unwrap(), 7, "the old published rows of the first five batches");
    assert_eq!(
        remaining_ids(&env.pool).await,
        [3, 7, 8, 10, 11, 12].map(|place| ids[place]),
        "the unpublished row stays; the walk goes past fresh rows in a batch with an expired one, and \
         stops at the batch of 10 and 11, where nothing has expired"
    );
    assert_eq!(relay.delete_expired().await.unwrap(), 0, "the next run stops at the same batch");
}

#[tokio::test]
async fn republishing_a_time_range_sends_exactly_the_rows_created_in_it() {
    let env = Env::start().await;
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();
    // Row 5, among the range's ids, was created outside it (a transaction that began earlier).
    age_rows(&env.pool, &[0, 1, 2, 5], "3 hours").await;
    age_rows(&env.pool, &[3, 4, 6], "2 hours").await;
    let now = chrono::Utc::now();

    let window = (now - chrono::Duration::minutes(150), now - chrono::Duration::minutes(90));
    let stats = outbox::republish(&env.pool, &env.js, window.0, window.1, |_| {}).await.unwrap();
    assert_eq!(stats.stored + stats.duplicates, 3, "rows 3, 4 and 6, and no other: {stats:?}");
    assert_eq!(stats.duplicates, 3, "JetStream still had them all");
    let empty = (now - chrono::Duration::minutes(80), now - chrono::Duration::minutes(70));
    let none = outbox::republish(&env.pool, &env.js, empty.0, empty.1, |_| {}).await.unwrap();
    assert_eq!(none.stored + none.duplicates, 0);
}
