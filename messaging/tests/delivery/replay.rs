use std::collections::BTreeSet;

use ates_messaging::replay::{ReplaySpec, StartAt, replay};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use crate::support::{Effects, Env};

async fn ids_in(env: &Env, table: &str) -> BTreeSet<Uuid> {
    sqlx::query_scalar(AssertSqlSafe(format!("SELECT event_id FROM {table}")))
        .fetch_all(&env.pool)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

async fn rebuild(env: &Env, start: StartAt) -> BTreeSet<Uuid> {
    sqlx::query("TRUNCATE replayed").execute(&env.pool).await.unwrap();
    let spec = ReplaySpec {
        stream: "TASKS".into(),
        subjects: vec![],
        start,
        batch_size: 100,
        dedupe_key: Some(format!("replay-{}", Uuid::new_v4())),
    };
    let mut reports = Vec::new();
    let done = replay(&env.js, &env.pool, &spec, Effects::new("replayed").as_ref(), |p| reports.push(p))
        .await
        .unwrap();
    assert_eq!(done.read, done.total, "read up to where the stream was at the start");
    assert_eq!(reports.last(), Some(&done), "progress reported up to the end");
    assert!(reports.windows(2).all(|w| w[0].read <= w[1].read), "progress only grows");
    ids_in(env, "replayed").await
}

#[tokio::test]
async fn replay_from_the_start_a_time_or_a_sequence_rebuilds_the_same_state() {
    let env = Env::start().await;
    env.spawn_consumer(&Effects::new("effects"));
    env.commit_events(700).await;
    env.relay().publish_pending().await.unwrap();
    env.relay().publish_pending().await.unwrap();
    env.expect_effects_exactly_once(700).await;
    let live = ids_in(&env, "effects").await;
    let contents = env.stream_contents("TASKS").await;

    assert_eq!(rebuild(&env, StartAt::Beginning).await, live);
    assert_eq!(rebuild(&env, StartAt::Beginning).await, live, "replaying twice gives the same state");

    let from_seq: BTreeSet<Uuid> =
        contents.iter().filter(|(seq, _)| *seq >= 301).filter_map(|(_, id)| *id).collect();
    assert_eq!(rebuild(&env, StartAt::Sequence(301)).await, from_seq);

    let stream = env.js.get_stream("TASKS").await.unwrap();
    let time_of_301 = stream.get_raw_message(301).await.unwrap().time;
    let from_time = rebuild(&env, StartAt::Time(time_of_301)).await;
    assert!(from_time.is_superset(&from_seq), "everything stored from that moment on");
    assert!(from_time.len() <= from_seq.len() + 1, "and nothing from much earlier");
}

#[tokio::test]
async fn replaying_an_empty_stream_finishes_at_once() {
    let env = Env::start().await;
    assert!(rebuild(&env, StartAt::Beginning).await.is_empty());
}
