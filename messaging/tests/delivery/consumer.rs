use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::message::PublishMessage;
use ates_messaging::{Consumer, ConsumerSpec};
use ates_schemas::Envelope;
use ates_schemas::events::TaskCompletedV1;
use ates_testkit::{TcpProxy, TestPostgres, eventually};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::support::{Effects, Env, Failure, Gate, completed, spec};

#[tokio::test]
async fn a_consumer_killed_after_its_commit_but_before_its_ack_applies_nothing_twice() {
    let mut env = Env::start().await;
    env.commit_events(20).await;
    env.relay().publish_pending().await.unwrap();
    // Consumer A reaches NATS through a proxy the test can cut.
    let proxy = TcpProxy::start(env.nats().port()).await;
    let js_a = Env::connect(&format!("nats://127.0.0.1:{}", proxy.port())).await;
    let gate = Gate::new();
    let handler_a = Effects::gated("effects", &gate);
    let a = Consumer::new(js_a, env.pool.clone(), spec(), handler_a);
    let task_a = tokio::spawn(a.run(CancellationToken::new()));

    gate.entered().await; // A holds its first batch inside the transaction
    proxy.cut(); // A's connection is gone: its acks cannot reach NATS
    gate.open(); // A commits
    eventually("A committed all 20", || async { (env.effects_in("effects").await.1 == 20).then_some(()) })
        .await;
    task_a.abort(); // ...and dies
    assert_eq!(env.consumer_backlog().await, (20, 0), "none of A's acks reached NATS");
    let handler_b = Effects::new("effects");
    env.spawn_consumer(&handler_b);

    eventually("B took over and acknowledged everything", || async {
        (env.consumer_backlog().await == (0, 0)).then_some(())
    })
    .await;
    assert_eq!(env.effects_in("effects").await, (20, 20), "no event applied twice");
    assert_eq!(handler_b.calls(), 0, "B skipped every redelivered event as already applied");
}

#[tokio::test]
async fn a_consumer_killed_before_its_commit_loses_nothing() {
    let env = Env::start().await;
    env.commit_events(20).await;
    env.relay().publish_pending().await.unwrap();
    let gate = Gate::new();
    let a = tokio::spawn(env.consumer(&Effects::gated("effects", &gate)).run(CancellationToken::new()));

    gate.entered().await; // A is inside its transaction
    a.abort(); // and dies: the transaction rolls back, nothing was acknowledged
    let b = Effects::new("effects");
    env.spawn_consumer(&b);

    env.expect_effects_exactly_once(20).await;
    eventually("all acknowledged", || async { (env.consumer_backlog().await == (0, 0)).then_some(()) }).await;
}

#[tokio::test]
async fn an_event_republished_with_a_new_msg_id_has_no_second_effect() {
    let env = Env::start().await;
    let handler = Effects::new("effects");
    env.spawn_consumer(&handler);
    let event = completed();
    let payload = serde_json::to_vec(&event).unwrap();

    for msg_id in ["first", "second, outside any dedupe window"] {
        let message = PublishMessage::build().payload(payload.clone().into()).message_id(msg_id);
        env.js.send_publish("tasks.completed.v1", message).await.unwrap().await.unwrap();
    }
    let marker = env.commit_events(1).await;
    env.relay().publish_pending().await.unwrap();

    env.expect_effects_exactly_once(2).await;
    assert_eq!(env.stream_messages("TASKS").await, 3, "JetStream stored the copy");
    eventually("all acknowledged", || async { (env.consumer_backlog().await == (0, 0)).then_some(()) }).await;
    assert_eq!(env.effects_in("effects").await, (2, 2), "{marker:?} and the event, once each");
}

#[tokio::test]
async fn a_transient_handler_failure_is_retried_and_then_succeeds() {
    let env = Env::start().await;
    let handler = Effects::new("effects");
    let event = completed();
    handler.fail(event.data.task_id, Failure::Times(2));
    env.spawn_consumer(&handler);

    crate::support::commit(&env.pool, std::slice::from_ref(&event)).await;
    env.relay().publish_pending().await.unwrap();

    env.expect_effects_exactly_once(1).await;
    assert_eq!(handler.attempts(event.data.task_id), 3, "two failures, then success");
    eventually("acknowledged", || async { (env.consumer_backlog().await == (0, 0)).then_some(()) }).await;
    assert!(env.stream_contents("DLQ").await.is_empty(), "nothing parked");
}

#[tokio::test]
async fn two_instances_of_a_consumer_share_the_work_and_apply_each_event_once() {
    let env = Env::start().await;
    let (first, second) = (Effects::new("effects"), Effects::new("effects"));
    env.spawn_consumer(&first);
    env.spawn_consumer(&second);
    env.spawn_relay();

    env.commit_events(2000).await;

    env.expect_effects_exactly_once(2000).await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_batch_in_hand() {
    let env = Env::start().await;
    env.commit_events(1).await;
    env.relay().publish_pending().await.unwrap();
    let gate = Gate::new();
    let shutdown = CancellationToken::new();
    let consumer = env.consumer(&Effects::gated("effects", &gate));
    let running = tokio::spawn(consumer.run(shutdown.clone()));

    gate.entered().await;
    shutdown.cancel();
    gate.open();
    tokio::time::timeout(Duration::from_secs(10), running).await.expect("stops promptly").unwrap();

    assert_eq!(env.effects_in("effects").await, (1, 1), "the batch in hand was committed");
    assert_eq!(env.consumer_backlog().await, (0, 0), "and acknowledged before stopping");
}

#[tokio::test]
async fn a_database_outage_holds_messages_instead_of_parking_them() {
    let mut postgres = TestPostgres::start().await;
    let env = Env::with_database(postgres.create_database().await).await;
    env.commit_events(100).await;
    env.relay().publish_pending().await.unwrap();
    let handler = Effects::new("effects");

    postgres.kill().await;
    env.spawn_consumer(&handler);
    // Long enough for every message to have been delivered and failed more than max_deliveries
    // times, had the outage counted as a handler failure (ack wait is 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    postgres.restart().await;

    env.expect_effects_exactly_once(100).await;
    assert!(env.stream_contents("DLQ").await.is_empty(), "an outage parks nothing");
}

#[tokio::test]
async fn a_database_that_refuses_work_for_longer_than_the_redelivery_window_parks_nothing() {
    // A read-only primary during failover, disk full, out of memory, a cancelled statement, an
    // administrator's shutdown and a lost connection, each raised by the database itself.
    let outages = ["25006", "53100", "53200", "57014", "57P01", "08006"];
    futures::future::join_all(outages.map(|code| async move {
        let env = Env::start().await;
        let handler = Effects::new("effects");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'the database refuses (%)', '{code}' USING ERRCODE = '{code}'; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON effects FOR EACH ROW EXECUTE FUNCTION refuse();"
        )))
        .execute(&env.pool)
        .await
        .unwrap();
        env.commit_events(30).await;
        env.relay().publish_pending().await.unwrap();
        // Small batches and short pulls: most messages wait behind the batch in hand.
        let mut small = spec();
        small.batch_size = 4;
        small.pull_expiry = Duration::from_secs(1);
        let consumer = env.consumer_with(small, &handler);
        tokio::spawn(consumer.run(env.shutdown.child_token()));

        // Six ack waits: long enough for every message to have been delivered and failed more
        // than max_deliveries times (retries start at 50 ms) had the outage counted as a handler
        // failure, and for held messages to be redelivered had their ack wait run out.
        eventually("the first attempt", || async { (handler.calls() > 0).then_some(()) }).await;
        tokio::time::sleep(spec().ack_wait * 6).await;
        assert!(env.stream_contents("DLQ").await.is_empty(), "{code}: an outage parks nothing");
        sqlx::raw_sql("DROP TRIGGER refuse ON effects").execute(&env.pool).await.unwrap();

        env.expect_effects_exactly_once(30).await;
        let parked = ates_messaging::dlq::Dlq::new(env.js.clone()).list(None).await.unwrap();
        assert!(parked.is_empty(), "{code}: nothing parked afterwards either: {parked:?}");
    }))
    .await;
}

/// Ten waiting events, and a database that refuses work (SQLSTATE 57P01 from a trigger) after
/// each attempt has taken a second, until the trigger `refuse` is dropped. The consumer spec
/// takes the ten as one batch, with a 6 s ack wait.
async fn ten_events_and_an_outage_of_slow_attempts(env: &Env) -> (Arc<Effects>, ConsumerSpec) {
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'the database refuses' USING ERRCODE = '57P01'; END $$;
         CREATE TRIGGER refuse BEFORE INSERT ON effects FOR EACH STATEMENT EXECUTE FUNCTION refuse();",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    let handler = Effects::slow("effects", Duration::from_secs(1));
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();
    let mut slow = spec();
    slow.batch_size = 10;
    slow.batch_linger = Duration::from_secs(1);
    slow.ack_wait = Duration::from_secs(6);
    (handler, slow)
}

#[tokio::test]
async fn messages_waiting_their_turn_through_a_long_outage_are_kept_from_timing_out() {
    let env = Env::start().await;
    // Every attempt takes a second and then finds the database refusing work. From the third
    // round of the outage on, the ten held messages are tried one at a time: a round is 10 s,
    // and the last of them waits 9 s for its turn, past the 6 s ack wait. "In progress" goes out
    // every 2 s. A second instance keeps pulling meanwhile: it would be given any held message
    // whose ack wait ran out.
    let (handler, slow) = ten_events_and_an_outage_of_slow_attempts(&env).await;
    env.spawn_consumer_from(env.consumer_with(slow.clone(), &handler));
    eventually("the first instance to take the batch", || async { (handler.calls() > 0).then_some(()) })
        .await;
    env.spawn_consumer_from(env.consumer_with(slow, &handler));

    // The first attempt, two rounds of the whole batch, then the round of single attempts.
    eventually("a round of single attempts", || async { (handler.calls() >= 13).then_some(()) }).await;
    sqlx::raw_sql("DROP TRIGGER refuse ON effects").execute(&env.pool).await.unwrap();

    env.expect_effects_exactly_once(10).await;
    assert_eq!(env.consumer_deliveries().await, 10, "nothing was delivered again");
    assert!(env.stream_contents("DLQ").await.is_empty(), "nothing parked");
}

#[tokio::test]
async fn a_shutdown_during_a_round_of_single_attempts_hands_the_held_messages_back_at_once() {
    let env = Env::start().await;
    // As above: from the third round of the outage on, ten single attempts of a second each.
    let (handler, slow) = ten_events_and_an_outage_of_slow_attempts(&env).await;
    let shutdown = CancellationToken::new();
    let consumer = env.consumer_with(slow, &handler);
    let running = tokio::spawn(consumer.run(shutdown.clone()));

    // The first attempt, two rounds of the whole batch, then the first single attempt.
    eventually("a round of single attempts", || async { (handler.calls() >= 4).then_some(()) }).await;
    shutdown.cancel();
    // The attempt in hand ends within a second; the nine singles left would take nine more.
    tokio::time::timeout(Duration::from_secs(5), running).await.expect("stops between attempts").unwrap();
    sqlx::raw_sql("DROP TRIGGER refuse ON effects").execute(&env.pool).await.unwrap();
    env.spawn_consumer(&handler);
    env.expect_effects_exactly_once(10).await;
}

#[tokio::test]
async fn a_consumer_applies_at_most_its_configured_batch_in_one_transaction() {
    use ates_messaging::consumer::DeliverySettings;

    let env = Env::start().await;
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();
    let handler = Effects::new("effects");
    let defaults = spec();
    let delivery = DeliverySettings {
        batch_size: 3,
        max_deliveries: defaults.max_deliveries,
        retry_initial: defaults.retry_initial,
        retry_max: defaults.retry_max,
    };
    env.spawn_consumer_from(env.consumer_with(defaults.with_delivery(delivery), &handler));

    // All ten wait in the stream before the consumer starts, so only the setting splits them.
    env.expect_effects_exactly_once(10).await;
    assert!(
        handler.largest_batch() <= 3,
        "a batch of {} events, configured for three",
        handler.largest_batch()
    );
    assert!(handler.calls() >= 4, "ten events in batches of three: {} batches", handler.calls());
}

/// 32 events waiting in the stream, the one at `bad` failing as `failure` says; returns them.
async fn a_batch_with_one_bad_event(
    env: &Env,
    handler: &Effects,
    bad: usize,
    failure: Failure,
) -> Vec<Envelope<TaskCompletedV1>> {
    let events: Vec<_> = (0..32).map(|_| completed()).collect();
    handler.fail(events[bad].data.task_id, failure);
    crate::support::commit(&env.pool, &events).await;
    env.relay().publish_pending().await.unwrap();
    events
}

/// Runs a consumer that takes the 32 events as one batch, however slowly they come in (a batch
/// otherwise closes 10 ms after its first message), with `spec` changed by `adjust`.
fn consume_as_one_batch(env: &Env, handler: &Arc<Effects>, adjust: impl FnOnce(&mut ConsumerSpec)) {
    let mut spec = spec();
    spec.batch_size = 32;
    spec.batch_linger = Duration::from_secs(1);
    adjust(&mut spec);
    env.spawn_consumer_from(env.consumer_with(spec, handler));
}

/// The rest of `events` applied once each, and the bad one alone parked after its last delivery.
async fn expect_all_but_the_bad_one(env: &Env, events: &[Envelope<TaskCompletedV1>], bad: usize) {
    env.expect_effects_exactly_once(events.len() as i64 - 1).await;
    let parked = eventually("the bad event parked", || async {
        let parked = env.stream_contents("DLQ").await;
        (!parked.is_empty()).then_some(parked)
    })
    .await;
    let ids: Vec<Option<Uuid>> = parked.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, [Some(events[bad].event_id)], "only the bad event is parked");
}

#[tokio::test]
async fn one_bad_event_in_a_batch_is_found_by_halving_it_not_by_a_transaction_per_event() {
    let env = Env::start().await;
    let handler = Effects::new("effects");
    let events = a_batch_with_one_bad_event(&env, &handler, 20, Failure::Always).await;
    consume_as_one_batch(&env, &handler, |_| {});

    expect_all_but_the_bad_one(&env, &events, 20).await;
    // Its first delivery: the batch, then two halves a level down to the bad event
    // (1 + 2 * log2(32) = 11 calls), then one call for each of its two redeliveries. A
    // transaction per event after the failed batch would be 1 + 32 + 2.
    assert_eq!(handler.calls(), 13, "handler calls for 32 events, one of them bad");
}

#[tokio::test]
async fn the_rest_of_a_batch_being_halved_is_kept_from_timing_out() {
    let env = Env::start().await;
    // Each call takes 300 ms, so halving the batch takes about 3.3 s, past the 2 s ack wait
    // (`spec`) of the events that wait for their turn. Each part alone is shorter than the
    // 667 ms between "in progress" messages. (The bad event is parked at once: nothing is
    // retried that could time out waiting behind the batch.)
    let handler = Effects::slow("effects", Duration::from_millis(300));
    let events = a_batch_with_one_bad_event(&env, &handler, 20, Failure::Rejected).await;
    consume_as_one_batch(&env, &handler, |_| {});

    expect_all_but_the_bad_one(&env, &events, 20).await;
    assert_eq!(env.consumer_deliveries().await, 32, "nothing was delivered again");
}

#[tokio::test]
async fn an_event_that_failed_while_its_batch_is_halved_is_retried_after_its_delay_not_an_ack_wait() {
    let env = Env::start().await;
    // Each call takes a second; "in progress" goes out every 4 s (a third of the ack wait). The
    // bad event fails on its first delivery: in the batch, three halves, the quarter [2, 4) and
    // alone, about 7 s in, when it is handed back to come again in a second. Halving the rest
    // takes until about 11 s. Told "in progress" at 8 s, the server would hold it back for a
    // whole ack wait more.
    let ack_wait = Duration::from_secs(12);
    let handler = Effects::slow("effects", Duration::from_secs(1));
    let events = a_batch_with_one_bad_event(&env, &handler, 2, Failure::Times(6)).await;
    consume_as_one_batch(&env, &handler, |spec| {
        spec.ack_wait = ack_wait;
        spec.retry_initial = Duration::from_secs(1);
        spec.retry_max = Duration::from_secs(1);
    });

    env.expect_effects_exactly_once(32).await;
    let times = handler.attempt_times(events[2].data.task_id);
    assert_eq!(times.len(), 7, "six attempts on its first delivery, then its retry");
    let waited = times[6] - times[5];
    assert!(waited < ack_wait, "retried {waited:?} after it failed alone, an ack wait or more");
    assert!(env.stream_contents("DLQ").await.is_empty(), "nothing parked");
}

#[tokio::test]
async fn a_consumer_of_the_whole_stream_narrowed_to_some_events_keeps_its_place_and_gets_only_those() {
    use ates_schemas::Envelope;
    use ates_schemas::events::{AssignReason, TaskAssignedV1};

    let env = Env::start().await;
    env.commit_events(5).await;
    env.relay().publish_pending().await.unwrap();
    let whole = CancellationToken::new();
    let handler = Effects::new("effects");
    let running = tokio::spawn(env.consumer(&handler).run(whole.clone()));
    env.expect_effects_exactly_once(5).await;
    eventually("all acknowledged", || async { (env.consumer_backlog().await == (0, 0)).then_some(()) }).await;
    whole.cancel();
    running.await.unwrap();

    // While it is stopped, more completions and two assignments arrive; then it is started again
    // with a filter (as when accounting gave completions their own consumer).
    env.commit_events(3).await;
    let assigned = |_| {
        let data = TaskAssignedV1 {
            task_id: uuid::Uuid::new_v4(),
            assignee_id: uuid::Uuid::new_v4(),
            previous_assignee_id: None,
            reason: AssignReason::Created,
        };
        Envelope::new("test", data)
    };
    crate::support::commit(&env.pool, &(0..2).map(assigned).collect::<Vec<_>>()).await;
    env.relay().publish_pending().await.unwrap();
    let mut narrowed = spec();
    narrowed.subjects = vec!["tasks.completed.*".to_owned()];
    let consumer = env.consumer_with(narrowed, &handler);
    let info = consumer.ensure().await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.config.filter_subjects, ["tasks.completed.*"], "the durable consumer was updated");
    env.spawn_consumer_from(consumer);

    env.expect_effects_exactly_once(8).await;
    eventually("all acknowledged", || async { (env.consumer_backlog().await == (0, 0)).then_some(()) }).await;
    let others: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM effects WHERE task_id = '00000000-0000-0000-0000-000000000000'",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(others, 0, "no assignment was delivered to it");
}
