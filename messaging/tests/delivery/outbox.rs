use std::collections::HashSet;
use std::slice::from_ref;
use std::time::Duration;

use ates_messaging::outbox::Events;
use ates_messaging::{OutboxError, Relay, RelayRound, RelaySettings};
use ates_schemas::Envelope;
use ates_schemas::events::TaskAddedV2;
use ates_testkit::eventually;
use uuid::Uuid;

use crate::support::{Effects, Env, OUTBOX, completed};

#[tokio::test]
async fn committed_events_are_published_once_each_and_rolled_back_ones_never() {
    let env = Env::start().await;
    env.spawn_relay();

    let mut rolled_back = env.pool.begin().await.unwrap();
    OUTBOX.add_all(&mut rolled_back, &[completed(), completed()]).await.unwrap();
    rolled_back.rollback().await.unwrap();
    let committed = env.commit_events(50).await;

    eventually("50 events in the stream", || async {
        (env.stream_messages("TASKS").await >= 50).then_some(())
    })
    .await;
    let published: Vec<Uuid> =
        env.stream_contents("TASKS").await.into_iter().filter_map(|(_, id)| id).collect();
    assert_eq!(published, committed, "each committed event once, in commit order, nothing else");
    eventually("every row marked published", || async { (env.unpublished().await == 0).then_some(()) }).await;
}

/// A `tasks.added` of a new task titled `title`.
fn added(title: &str) -> Envelope<TaskAddedV2> {
    let task = TaskAddedV2 {
        task_id: Uuid::new_v4(),
        title: title.into(),
        jira_id: None,
        description: String::new(),
        created_by: Uuid::new_v4(),
    };
    Envelope::new("test", task)
}

#[tokio::test]
async fn an_invalid_event_is_refused_before_it_reaches_the_outbox() {
    let env = Env::start().await;
    let mut tx = env.pool.begin().await.unwrap();

    let batch = [added("Feed the birds"), added("[POP-1] brackets belong in jira_id")];
    let error = OUTBOX.add_all(&mut tx, &batch).await.unwrap_err();

    assert!(matches!(&error, OutboxError::Invalid(e) if e.kind() == "invalid"), "{error}");
    tx.commit().await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox").fetch_one(&env.pool).await.unwrap();
    assert_eq!(rows, 0, "nothing of the batch is written");
}

#[tokio::test]
async fn events_of_several_kinds_are_written_together_in_order_or_not_at_all() {
    let env = Env::start().await;
    let (first, second, third) = (added("Feed the birds"), completed(), added("Count the eggs"));
    let mut tx = env.pool.begin().await.unwrap();
    let events = Events::default().with(from_ref(&first)).unwrap();
    let events = events.with(from_ref(&second)).unwrap().with(from_ref(&third)).unwrap();
    OUTBOX.write(&mut tx, events).await.unwrap();
    tx.commit().await.unwrap();
    let rows: Vec<(Uuid, String)> = sqlx::query_as("SELECT event_id, subject FROM outbox ORDER BY id")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    let expected = [
        (first.event_id, "tasks.added.v2"),
        (second.event_id, "tasks.completed.v1"),
        (third.event_id, "tasks.added.v2"),
    ];
    assert_eq!(
        rows,
        expected.map(|(id, subject)| (id, subject.to_owned())),
        "every event, in the order added"
    );

    let invalid = Events::default().with(&[completed()]).unwrap().with(&[added("[POP-1] in the title")]);
    assert!(
        matches!(&invalid, Err(OutboxError::Invalid(e)) if e.kind() == "invalid"),
        "refused as it is added"
    );
}

#[tokio::test]
async fn two_relays_running_at_once_publish_every_event_exactly_once() {
    let env = Env::start().await;
    let committed = env.commit_events(3000).await;
    let (first, second) = (env.relay(), env.relay());

    let drain = |relay: ates_messaging::Relay| async move {
        let mut total = RelayRound::default();
        loop {
            let round = relay.publish_pending().await.unwrap();
            if round.claimed == 0 {
                return total;
            }
            total.claimed += round.claimed;
            total.published += round.published;
            total.duplicates += round.duplicates;
        }
    };
    let (a, b) = tokio::join!(drain(first), drain(second));

    assert_eq!(a.published + b.published, 3000, "every row published by one relay: {a:?} {b:?}");
    assert_eq!(a.duplicates + b.duplicates, 0, "no row published twice");
    let ids: HashSet<Uuid> =
        env.stream_contents("TASKS").await.into_iter().filter_map(|(_, id)| id).collect();
    assert_eq!(ids, committed.into_iter().collect());
    assert_eq!(env.stream_messages("TASKS").await, 3000);
    assert_eq!(env.unpublished().await, 0);
}

#[tokio::test]
async fn events_committed_while_nats_is_down_all_arrive_after_it_restarts() {
    let mut env = Env::start().await;
    let handler = Effects::new("effects");
    env.spawn_relay();
    env.spawn_consumer(&handler);
    env.commit_events(1).await;
    env.expect_effects_exactly_once(1).await;

    env.nats().stop().await;
    env.commit_events(1000).await;
    assert_eq!(env.unpublished().await, 1000, "the relay keeps what it cannot publish");
    env.nats().restart().await;

    env.expect_effects_exactly_once(1001).await;
    eventually("the outbox drained", || async { (env.unpublished().await == 0).then_some(()) }).await;
    assert_eq!(env.stream_messages("TASKS").await, 1001);
}

#[tokio::test]
async fn published_rows_are_kept_for_the_retention_horizon_then_deleted() {
    let env = Env::start().await;
    env.commit_events(10).await;
    let relay = env.relay();
    relay.publish_pending().await.unwrap();
    env.commit_events(5).await;

    assert_eq!(relay.delete_expired().await.unwrap(), 0, "a week's horizon keeps fresh rows");
    let settings = ates_messaging::RelaySettings::keeping(Duration::ZERO);
    let impatient =
        ates_messaging::Relay::new(env.pool.clone(), env.js.clone(), crate::support::SCHEMA, settings);
    assert_eq!(impatient.delete_expired().await.unwrap(), 10, "only published rows expire");
    assert_eq!(env.unpublished().await, 5);
}

#[tokio::test]
async fn an_event_committed_after_a_burst_is_published_without_waiting_for_all_of_it() {
    let env = Env::start().await;
    let burst: Vec<_> = (0..1500).map(|_| completed()).collect();
    crate::support::commit(&env.pool, &burst).await;
    let late = completed();
    crate::support::commit(&env.pool, std::slice::from_ref(&late)).await;

    let published = env.relay().publish_backlog(&tokio_util::sync::CancellationToken::new()).await.unwrap();
    assert_eq!(published.published, 1501);
    let in_stream: Vec<Uuid> =
        env.stream_contents("TASKS").await.into_iter().filter_map(|(_, id)| id).collect();
    let distinct: HashSet<Uuid> = in_stream.iter().copied().collect();
    assert_eq!((in_stream.len(), distinct.len()), (1501, 1501), "each event once");
    let position = in_stream.iter().position(|id| *id == late.event_id).unwrap();
    assert!(position < 1000, "the late event went with the first batches, from the newest end: {position}");
    assert_eq!(env.unpublished().await, 0);
}

#[tokio::test]
async fn the_running_relay_publishes_from_both_ends_while_it_has_a_backlog() {
    let env = Env::start().await;
    let burst: Vec<_> = (0..5000).map(|_| completed()).collect();
    crate::support::commit(&env.pool, &burst).await;
    let late = completed();
    crate::support::commit(&env.pool, std::slice::from_ref(&late)).await;
    env.spawn_relay();
    eventually("everything published", || async { (env.unpublished().await == 0).then_some(()) }).await;
    let sequence: i64 = sqlx::query_scalar("SELECT stream_seq FROM outbox WHERE event_id = $1")
        .bind(late.event_id)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    // The first round takes the oldest batch; the next, from both ends, takes the late event.
    assert!(sequence <= 1500, "the late event went out in the second round, not after the burst: {sequence}");
    assert_eq!(env.stream_messages("TASKS").await, 5001);
}

#[tokio::test]
async fn an_outbox_write_wakes_the_relay_of_its_process_however_long_it_would_wait() {
    let env = Env::start().await;
    let settings = RelaySettings { idle_poll: Duration::from_secs(3600), ..env.relay_settings() };
    let relay = Relay::new(env.pool.clone(), env.js.clone(), crate::support::SCHEMA, settings);
    tokio::spawn(relay.run(env.shutdown.child_token()));
    // Its first look finds nothing; from then on it would poll only once an hour.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let committed = env.commit_events(3).await;
    eventually("the events in the stream", || async {
        (env.stream_messages("TASKS").await == 3).then_some(())
    })
    .await;
    let published: Vec<Uuid> =
        env.stream_contents("TASKS").await.into_iter().filter_map(|(_, id)| id).collect();
    assert_eq!(published, committed);
}

#[tokio::test]
async fn rows_another_process_wrote_are_found_by_polling() {
    let env = Env::start().await;
    env.spawn_relay();
    let event = completed();
    // As another instance writes them: no write of this process tells the relay.
    sqlx::query("INSERT INTO outbox (event_id, subject, payload) VALUES ($1, $2, $3)")
        .bind(event.event_id)
        .bind("tasks.completed.v1")
        .bind(serde_json::to_vec(&event).unwrap())
        .execute(&env.pool)
        .await
        .unwrap();
    eventually("the row published", || async { (env.unpublished().await == 0).then_some(()) }).await;
    assert_eq!(env.stream_messages("TASKS").await, 1);
}
