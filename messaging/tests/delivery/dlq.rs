use ates_messaging::dlq::{Dlq, RedriveError};
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
    // Its first delivery: with the other ten, then in halves down to itself (at most four
    // tries among eleven); then alone on each of its two redeliveries.
    let attempts = handler.attempts(doomed.data.task_id);
    assert!((4..=6).contains(&attempts), "{attempts} attempts of the failing event");
    eventually("nothing left to deliver", || async {
        (env.consumer_backlog().await == (0, 0)).then_some(())
    })
    .await;

    // The bug is fixed: re-driving the message applies it, once.
    handler.heal(doomed.data.task_id);
    let (from_tasks, more) = dlq.parked_from("TASKS", 4).await.unwrap();
    assert_eq!((from_tasks.len(), more), (4, false), "all four, and no more");
    let sequences: Vec<u64> = from_tasks.iter().map(|p| p.sequence).collect();
    assert!(sequences.is_sorted(), "oldest first: {sequences:?}");
    assert!(dlq.parked_from("TASKS", 2).await.unwrap().1, "more than shown");
    assert!(dlq.parked_from("ACCOUNTS", 10).await.unwrap().0.is_empty(), "nothing came from ACCOUNTS");
    let redriven = dlq.redrive(exhausted.sequence, Some("TASKS")).await.unwrap();
    assert_eq!(redriven.subject, "tasks.completed.v1");
    assert_eq!(redriven.event_id, Some(doomed.event_id));
    env.expect_effects_exactly_once(11).await;
    assert_eq!(dlq.list(Some(CONSUMER)).await.unwrap().len(), 3, "the re-driven message left the DLQ");
    assert!(
        matches!(dlq.redrive(exhausted.sequence, None).await, Err(RedriveError::NotFound(_))),
        "a second re-drive finds nothing to do"
    );
}

/// A parked copy that is not what its stream holds (anyone who may park can write one) is
/// never published; nor is one from another producer's stream, nor one the stream no longer has.
#[tokio::test]
async fn a_redrive_publishes_only_the_original_and_only_for_its_own_stream() {
    use async_nats::HeaderMap;
    use ates_messaging::dlq::headers;

    let env = Env::start().await;
    env.commit_events(1).await;
    env.relay().publish_pending().await.unwrap();
    let stream = env.js.get_stream("TASKS").await.unwrap();
    let original = stream.get_raw_message(1).await.unwrap();
    let forge_on = |subject: &str, payload: Vec<u8>, from: &str, at: u64| {
        let mut parked = HeaderMap::new();
        parked.insert(headers::CONSUMER, CONSUMER);
        parked.insert(headers::STREAM, from);
        parked.insert(headers::SUBJECT, subject);
        parked.insert(headers::SEQUENCE, at.to_string().as_str());
        let js = env.js.clone();
        async move {
            let ack =
                js.publish_with_headers(format!("dlq.{CONSUMER}"), parked, payload.into()).await.unwrap();
            ack.await.unwrap().sequence
        }
    };
    let forge =
        |payload: Vec<u8>, from: &str, at: u64| forge_on(original.subject.as_str(), payload, from, at);
    let mut tampered: serde_json::Value = serde_json::from_slice(&original.payload).unwrap();
    tampered["data"]["title"] = json!("Pay everyone twice");
    let tampered = forge(serde_json::to_vec(&tampered).unwrap(), "TASKS", 1).await;
    let elsewhere = forge(original.payload.to_vec(), "ACCOUNTS", 1).await;
    let gone = forge(original.payload.to_vec(), "TASKS", 99).await;
    let nowhere = forge(original.payload.to_vec(), "", 0).await;
    let moved = forge_on("tasks.elsewhere.v1", original.payload.to_vec(), "TASKS", 1).await;
    let genuine = forge(original.payload.to_vec(), "TASKS", 1).await;

    let dlq = Dlq::new(env.js.clone());
    assert!(matches!(dlq.redrive(tampered, None).await, Err(RedriveError::Differs { .. })));
    assert!(matches!(dlq.redrive(elsewhere, Some("TASKS")).await, Err(RedriveError::NotFromStream { .. })));
    let refused = dlq.redrive(gone, None).await;
    assert!(matches!(&refused, Err(RedriveError::OriginalGone { .. })), "{refused:?}");
    let said = refused.unwrap_err().to_string();
    assert!(said.contains(&format!("ates dlq discard {gone}")), "says what to do: {said}");
    assert!(matches!(dlq.redrive(nowhere, None).await, Err(RedriveError::NoOrigin(_))));
    let refused = dlq.redrive(moved, None).await;
    assert!(
        matches!(refused, Err(RedriveError::Differs { .. })),
        "the same bytes on another subject: {refused:?}"
    );
    assert!(matches!(dlq.redrive(0, None).await, Err(RedriveError::NotFound(0))));
    let messages = stream.get_info().await.unwrap().state.messages;
    assert_eq!(messages, 1, "nothing refused reached the stream");

    let redriven = dlq.redrive(genuine, Some("TASKS")).await.unwrap();
    let again = stream.get_raw_message(2).await.unwrap();
    assert_eq!((again.subject.as_str(), &again.payload), (redriven.subject.as_str(), &original.payload));
    let left: Vec<u64> = dlq.list(None).await.unwrap().iter().map(|p| p.sequence).collect();
    assert_eq!(
        left,
        [tampered, elsewhere, gone, nowhere, moved],
        "the refused stay parked, the re-driven one left"
    );
    let (from_tasks, _) = dlq.parked_from("TASKS", 10).await.unwrap();
    let listed: Vec<u64> = from_tasks.iter().map(|p| p.sequence).collect();
    assert_eq!(listed, [tampered, gone, moved], "only what says it came from TASKS");
    dlq.discard(tampered).await.unwrap();
    dlq.discard(tampered).await.unwrap(); // gone already: done
    assert!(matches!(dlq.redrive(tampered, None).await, Err(RedriveError::NotFound(_))));
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

/// Another instance applies an event while this one is on its last delivery of it, so this one
/// fails (on the event's key, in the real handlers): the event was applied, so it is acknowledged,
/// not parked.
#[tokio::test]
async fn an_event_another_instance_applied_during_its_last_delivery_is_not_parked() {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicI64, Ordering};

    use ates_messaging::{Handler, HandlerError};
    use ates_schemas::ReceivedEvent;
    use sqlx::PgPool;
    use uuid::Uuid;

    /// Keeps its record in `effects`; fails every delivery, and on the last one another instance
    /// applies the event first.
    struct AppliedElsewhere {
        pool: PgPool,
        attempts: AtomicI64,
        last: i64,
    }
    impl Handler for AppliedElsewhere {
        const RECORDS_APPLIED: bool = true;

        async fn handle(
            &self,
            _: &mut sqlx::PgConnection,
            events: &[ReceivedEvent],
        ) -> Result<(), HandlerError> {
            if self.attempts.fetch_add(1, Ordering::SeqCst) + 1 == self.last {
                let ids: Vec<Uuid> = events.iter().map(|e| e.meta.event_id).collect();
                sqlx::query(
                    "INSERT INTO effects (event_id, task_id) SELECT id, id FROM unnest($1::uuid[]) AS id",
                )
                .bind(ids)
                .execute(&self.pool)
                .await?;
            }
            Err(HandlerError::Transient("duplicate key value violates unique constraint".into()))
        }

        async fn recorded(&self, pool: &PgPool, _: &str, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
            let applied: Vec<Uuid> =
                sqlx::query_scalar("SELECT event_id FROM effects WHERE event_id = ANY($1)")
                    .bind(ids)
                    .fetch_all(pool)
                    .await?;
            Ok(applied.into_iter().collect())
        }
    }
    let env = Env::start().await;
    let spec = crate::support::spec();
    let handler = std::sync::Arc::new(AppliedElsewhere {
        pool: env.pool.clone(),
        attempts: AtomicI64::new(0),
        last: spec.max_deliveries,
    });
    let consumer = ates_messaging::Consumer::new(env.js.clone(), env.pool.clone(), spec, handler.clone());
    tokio::spawn(consumer.run(env.shutdown.child_token()));
    env.commit_events(1).await;
    env.relay().publish_pending().await.unwrap();

    eventually("the event settled", || async {
        (handler.attempts.load(Ordering::SeqCst) == handler.last && env.consumer_backlog().await == (0, 0))
            .then_some(())
    })
    .await;
    let parked = Dlq::new(env.js.clone()).list(None).await.unwrap();
    assert!(parked.is_empty(), "an applied event was parked: {parked:?}");
    assert_eq!(env.effects_in("effects").await, (1, 1), "applied once");
}
