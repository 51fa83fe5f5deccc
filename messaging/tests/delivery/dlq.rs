use ates_messaging::dlq::Dlq;
use ates_testkit::eventually;
use serde_json::json;

use crate::support::{CONSUMER, Effects, Env, Failure, commit, completed};

#[tokio::test]
async fn broken_messages_are_parked_with_their_reason_and_later_ones_are_processed() {
    let env = Env::start().await;
    let handler = Effects::new("effects");
    let doomed = completed();
    handler.fail(doomed.data.task_id, Failure::Always);
    env.spawn_consumer(&handler);

    let mut invalid = serde_json::to_value(completed()).unwrap();
    invalid["data"]["task_id"] = json!(42);
    let mut unknown_version = serde_json::to_value(completed()).unwrap();
    unknown_version["event_version"] = json!(9);
    let broken = [
        ("tasks.completed.v1", b"\xff\x00 not json".to_vec()),
        ("tasks.completed.v1", serde_json::to_vec(&invalid).unwrap()),
        ("tasks.completed.v9", serde_json::to_vec(&unknown_version).unwrap()),
    ];
    for (subject, payload) in broken {
        env.js.publish(subject, payload.into()).await.unwrap().await.unwrap();
    }
    commit(&env.pool, std::slice::from_ref(&doomed)).await;
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();

    env.expect_effects_exactly_once(10).await;
    let dlq = Dlq::new(env.js.clone());
    let parked = eventually("four parked messages", || async {
        let parked = dlq.list(Some(CONSUMER)).await.unwrap();
        (parked.len() == 4).then_some(parked)
    })
    .await;
    let mut reasons: Vec<(&str, &str, u64)> =
        parked.iter().map(|p| (p.reason.as_str(), p.subject.as_str(), p.stream_sequence)).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("handler_failed", "tasks.completed.v1", 4),
            ("invalid", "tasks.completed.v1", 2),
            ("undecodable", "tasks.completed.v1", 1),
            ("unknown_event", "tasks.completed.v9", 3),
        ]
    );
    for message in &parked {
        assert_eq!((message.consumer.as_str(), message.stream.as_str()), (CONSUMER, "TASKS"));
        assert!(!message.detail.is_empty(), "{message:?} says what went wrong");
    }
    let exhausted = parked.iter().find(|p| p.reason == "handler_failed").unwrap();
    assert_eq!(exhausted.deliveries, 3, "parked after its last allowed delivery");
    assert_eq!(handler.attempts(doomed.data.task_id), 4, "one batch attempt, then alone on each delivery");
    eventually("nothing left to deliver", || async {
        (env.consumer_backlog().await == (0, 0)).then_some(())
    })
    .await;

    // The bug is fixed: re-driving the message applies it, once.
    handler.heal(doomed.data.task_id);
    let subject = dlq.redrive(exhausted.sequence).await.unwrap();
    assert_eq!(subject, "tasks.completed.v1");
    env.expect_effects_exactly_once(11).await;
    assert_eq!(dlq.list(Some(CONSUMER)).await.unwrap().len(), 3, "the re-driven message left the DLQ");
}

#[tokio::test]
async fn a_rejected_event_is_parked_at_once() {
    use ates_messaging::{Handler, HandlerError};
    use ates_schemas::ReceivedEvent;

    struct Rejects;
    impl Handler for Rejects {
        async fn handle(&self, _: &mut sqlx::PgConnection, _: &[ReceivedEvent]) -> Result<(), HandlerError> {
            Err(HandlerError::Rejected("this event can never apply".into()))
        }
    }
    let env = Env::start().await;
    let consumer = ates_messaging::Consumer::new(
        env.js.clone(),
        env.pool.clone(),
        crate::support::spec(),
        std::sync::Arc::new(Rejects),
    );
    tokio::spawn(consumer.run(env.shutdown.child_token()));
    env.commit_events(1).await;
    env.relay().publish_pending().await.unwrap();

    let dlq = Dlq::new(env.js.clone());
    let parked =
        eventually("the event parked", || async { dlq.list(None).await.unwrap().into_iter().next() }).await;
    assert_eq!((parked.reason.as_str(), parked.deliveries), ("rejected", 1));
    assert_eq!(parked.detail, "this event can never apply");
}
