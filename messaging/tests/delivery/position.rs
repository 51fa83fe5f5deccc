//! A consumer checks its place in the stream on every connection: when the stream lost what it
//! had been given and other events took those sequences, it starts again from before and applies
//! them, skipping what it applied.

use std::sync::Arc;
use std::time::Duration;

use ates_messaging::outbox::AuditSettings;
use ates_messaging::{Relay, RelaySettings};
use tokio_util::sync::CancellationToken;

use crate::audit::{Kept, audit_settings, expect_stream_holds, keep, put_back, stream_sequences};
use crate::support::{Effects, Env, Failure, SCHEMA, SERVER_FAULTS, commit, completed};

/// 300 events applied, then 200 more applied that the stream loses on a restart. The relay has no
/// auditor, so nothing puts the lost events back and the next 300 take sequences 301 to 600: the
/// consumer, which stood at 500, must still apply every one of them.
#[tokio::test]
async fn a_consumer_applies_new_events_that_took_the_sequences_its_stream_lost() {
    let (_one_at_a_time, mut env, _) = applied_without_audit().await;
    lose_the_next(&mut env, 200, 300).await;

    let new = env.commit_events(300).await;
    let sequences: Vec<i64> = eventually_published(&env, &new).await;
    assert_eq!(sequences.iter().min(), Some(&301), "the new events took the lost sequences");
    env.expect_effects_exactly_once(800).await;

    // Started again at a time, the consumer keeps that start on the next connection.
    env.nats().restart().await;
    env.commit_events(50).await;
    env.expect_effects_exactly_once(850).await;
}

/// The same loss while the consumer is stopped: it checks when it starts.
#[tokio::test]
async fn a_consumer_started_after_its_stream_lost_what_it_was_given_misses_nothing() {
    let _one_at_a_time = SERVER_FAULTS.lock().await;
    let mut env = Env::start().await;
    env.spawn_relay();
    let effects = Effects::new("effects");
    let stop = CancellationToken::new();
    let first = tokio::spawn(env.consumer(&effects).run(stop.clone()));
    env.commit_events(300).await;
    env.expect_effects_exactly_once(300).await;
    let kept = keep(&mut env, Kept::Messages).await;
    env.commit_events(200).await;
    env.expect_effects_exactly_once(500).await;
    stop.cancel();
    first.await.unwrap();

    put_back(&mut env, &kept).await;
    env.nats().restart().await;
    let new = env.commit_events(300).await;
    eventually_published(&env, &new).await;
    env.spawn_consumer(&effects);
    env.expect_effects_exactly_once(800).await;
}

/// A relay round that passed its audit gate before the server went down (here it waits for the
/// pool's one connection) publishes new events once NATS is back, before any audit: they take
/// sequences the stream lost. The consumer applies them, and the lost events once.
#[tokio::test]
async fn new_events_a_relay_round_publishes_before_the_audit_are_applied() {
    let _one_at_a_time = SERVER_FAULTS.lock().await;
    let mut env = Env::start().await;
    let options = (*env.pool.connect_options()).clone();
    let one = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(120))
        .connect_lazy_with(options);
    let audit = AuditSettings { interval: Duration::from_secs(3600), ..audit_settings() };
    let settings = RelaySettings { audit: Some(audit), ..env.relay_settings() };
    tokio::spawn(Relay::new(one.clone(), env.js.clone(), SCHEMA, settings).run(env.shutdown.child_token()));
    env.spawn_consumer(&Effects::new("effects"));
    let mut ids = env.commit_events(300).await;
    env.expect_effects_exactly_once(300).await;
    let kept = keep(&mut env, Kept::Messages).await;
    ids.extend(env.commit_events(200).await);
    env.expect_effects_exactly_once(500).await;

    let held = one.acquire().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // the relay is past its gate, in begin()
    let new = env.commit_events(100).await;
    put_back(&mut env, &kept).await;
    env.nats().restart().await;
    drop(held);
    ids.extend(&new);
    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(600).await;
}

/// A relay round has its acknowledgements but has not yet recorded them when the server comes
/// back without them (a trigger holds the round's mark; in production its other acks may take up
/// to the ack timeout). The audit after the reconnection cannot see those rows as published and
/// finds nothing lost, and new events take their sequences. The consumer applies them all.
#[tokio::test]
async fn new_events_that_take_sequences_the_audit_could_not_see_are_applied() {
    let (_one_at_a_time, mut env, mut ids) = crate::audit::applied_events(300).await;
    let kept = keep(&mut env, Kept::Messages).await;
    sqlx::raw_sql(
        "CREATE FUNCTION slow_mark() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.published_at IS NOT NULL THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF; RETURN NEW; END $$;
         CREATE TRIGGER slow_mark BEFORE UPDATE ON outbox FOR EACH ROW EXECUTE FUNCTION slow_mark();",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let mut hold = env.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(4242)").execute(&mut *hold).await.unwrap();
    ids.extend(env.commit_events(100).await);
    env.expect_effects_exactly_once(400).await; // acknowledged, delivered, applied; not yet marked
    put_back(&mut env, &kept).await;
    env.nats().restart().await;
    assert_eq!(env.stream_messages("TASKS").await, 300, "the stream lost its tail");
    tokio::time::sleep(Duration::from_millis(1500)).await; // an audit runs after the reconnection
    let new = env.commit_events(100).await;
    hold.commit().await.unwrap();
    ids.extend(&new);
    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(500).await;
}

/// A relay without an auditor (nothing puts lost events back into their sequences) and a consumer
/// at work, and 300 events applied. Holds the lock of the tests that stop and start the server.
async fn applied_without_audit() -> (tokio::sync::MutexGuard<'static, ()>, Env, Arc<Effects>) {
    let one_at_a_time = SERVER_FAULTS.lock().await;
    let env = Env::start().await;
    env.spawn_relay();
    let effects = Effects::new("effects");
    env.spawn_consumer(&effects);
    env.commit_events(300).await;
    env.expect_effects_exactly_once(300).await;
    (one_at_a_time, env, effects)
}

/// Commits `lost` more events and waits until they are applied (`applied` were before); then the
/// server comes back without them, as after a power loss before they reached the disk.
async fn lose_the_next(env: &mut Env, lost: usize, applied: i64) {
    let kept = keep(env, Kept::Messages).await;
    let held = env.stream_messages("TASKS").await;
    env.commit_events(lost).await;
    env.expect_effects_exactly_once(applied + i64::try_from(lost).unwrap()).await;
    put_back(env, &kept).await;
    env.nats().restart().await;
    assert_eq!(env.stream_messages("TASKS").await, held, "the stream lost its tail");
}

/// The stream sequences of `ids` once the relay has recorded them all.
async fn eventually_published(env: &Env, ids: &[uuid::Uuid]) -> Vec<i64> {
    ates_testkit::eventually("the events to be published", || async {
        stream_sequences(env, ids).await.into_iter().collect::<Option<Vec<i64>>>()
    })
    .await
}

/// One event lost and one new event in its sequence: the server thinks it delivered that
/// sequence, so nothing comes to the consumer. It checks on the reconnection itself.
#[tokio::test]
async fn a_single_new_event_that_takes_the_sequence_its_stream_lost_is_applied() {
    let (_one_at_a_time, mut env, _) = applied_without_audit().await;
    lose_the_next(&mut env, 1, 300).await;

    let new = env.commit_events(1).await;
    assert_eq!(eventually_published(&env, &new).await, [301], "the new event took the lost sequence");
    env.expect_effects_exactly_once(302).await;
}

/// An event the handler cannot apply yet is being retried by the server when the consumer starts
/// again after a loss, long after the event was published: making the durable again forgets its
/// retries, so the consumer starts no later than the first message it had not acknowledged.
#[tokio::test]
async fn an_event_still_being_retried_when_the_consumer_starts_again_is_applied() {
    let _one_at_a_time = SERVER_FAULTS.lock().await;
    let mut env = Env::start().await;
    env.spawn_relay();
    let effects = Effects::new("effects");
    let mut spec = crate::support::spec();
    spec.max_deliveries = 100_000;
    spec.retry_max = Duration::from_millis(500);
    spec.loss_margin = Duration::from_secs(2);
    env.spawn_consumer_from(env.consumer_with(spec, &effects));
    let stuck = completed();
    let task = stuck.data.task_id;
    effects.fail(task, Failure::Always);
    commit(&env.pool, &[stuck]).await;
    env.commit_events(300).await;
    env.expect_effects_exactly_once(300).await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the stuck event is older than the margin

    lose_the_next(&mut env, 200, 300).await;
    env.commit_events(100).await;
    env.expect_effects_exactly_once(600).await;
    effects.heal(task);
    env.expect_effects_exactly_once(601).await;
}

/// An event parked just before the stream lost it, and a new event that takes its sequence and
/// fails too: both are parked (a park is known by the event, not by its sequence).
#[tokio::test]
async fn a_new_event_parked_at_a_sequence_the_stream_lost_is_parked_too() {
    let (_one_at_a_time, mut env, effects) = applied_without_audit().await;
    let kept = keep(&mut env, Kept::Messages).await;

    let old = completed();
    effects.fail(old.data.task_id, Failure::Always);
    commit(&env.pool, &[old]).await;
    ates_testkit::eventually("the old event to be parked", || async {
        (env.stream_messages("DLQ").await == 1).then_some(())
    })
    .await;
    put_back(&mut env, &kept).await;
    env.nats().restart().await;
    assert_eq!(env.stream_messages("TASKS").await, 300, "the stream lost its tail");

    let new = completed();
    effects.fail(new.data.task_id, Failure::Always);
    commit(&env.pool, std::slice::from_ref(&new)).await;
    assert_eq!(
        eventually_published(&env, &[new.event_id]).await,
        [301],
        "the new event took the lost sequence"
    );
    ates_testkit::eventually("the new event to be parked beside the old one", || async {
        (env.stream_messages("DLQ").await == 2).then_some(())
    })
    .await;
}
