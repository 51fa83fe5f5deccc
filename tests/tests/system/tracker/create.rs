use ates_tests::Role;
use std::collections::{HashMap, HashSet};

use ates_schemas::DomainEvent;
use ates_tests::{TestSystem, outbox_events};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn anyone_signed_in_creates_a_task_and_a_worker_or_accountant_gets_it() {
    let sys = TestSystem::start().await;
    let (worker, accountant, manager) =
        (sys.popug(Role::Worker).await, sys.popug(Role::Accountant).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &accountant, &manager]).await;

    let body = json!({ "title": "  Feed the birds ", "jira_id": "POP-12", "description": "twice a day" });
    let task = sys.post("/api/tasks", &manager.token, body).await.expect(StatusCode::CREATED);

    assert_eq!(task["title"], "Feed the birds");
    assert_eq!(task["jira_id"], "POP-12");
    assert_eq!(task["status"], "open");
    assert_eq!(task["created_by"], manager.id.to_string());
    assert!(task["completed_at"].is_null());
    let assignee = task["assignee_id"].as_str().unwrap();
    assert!([worker.id.to_string(), accountant.id.to_string()].contains(&assignee.to_owned()), "{task}");
    let fetched = sys.get(&format!("/api/tasks/{}", task["task_id"].as_str().unwrap()), &worker.token).await;
    assert_eq!(fetched.expect(StatusCode::OK), task);
    sys.finish().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_sentence_and_nothing_is_stored() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker]).await;

    for (body, expected) in [
        (json!({ "title": "[POP-1] Feed the birds" }), "must not contain `[` or `]`"),
        (json!({ "title": "Feed ] the birds" }), "must not contain `[` or `]`"),
        (json!({ "title": "   " }), "must not be blank"),
        (json!({ "title": "Feed", "jira_id": "pop one" }), "is not a jira id"),
        (json!({ "title": "Feed", "priority": "high" }), "unknown field `priority`"),
        (json!({ "description": "no title" }), "missing field `title`"),
    ] {
        let reply = sys.post("/api/tasks", &worker.token, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply:?}");
        assert!(reply.detail().contains(expected), "{body}: {}", reply.detail());
    }
    let anonymous = sys.call(Method::POST, "/api/tasks", None, Some(json!({ "title": "Feed" }))).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(sys.get("/api/tasks", &worker.token).await.expect(StatusCode::OK)["items"], json!([]));
    assert!(outbox_events(&sys.system.task_tracker.backbone.pool).await.is_empty(), "no events either");
    sys.finish().await;
}

#[tokio::test]
async fn with_nobody_to_assign_a_task_is_refused_and_nothing_is_stored() {
    let sys = TestSystem::start().await;
    let manager = sys.popug(Role::Manager).await;
    let deactivated = sys.popug(Role::Worker).await;
    sys.patch_account(&sys.admin_token().await, deactivated.id, json!({ "active": false })).await;
    sys.known_to_task_tracker(&[&manager, &deactivated]).await;

    let reply = sys.post("/api/tasks", &manager.token, json!({ "title": "Feed the birds" })).await;

    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert!(reply.detail().contains("no active worker or accountant"));
    assert_eq!(sys.get("/api/tasks", &manager.token).await.expect(StatusCode::OK)["items"], json!([]));
    assert!(outbox_events(&sys.system.task_tracker.backbone.pool).await.is_empty());
    sys.finish().await;
}

#[tokio::test]
async fn assignees_are_drawn_from_every_assignable_account_and_no_other() {
    let sys = TestSystem::start().await;
    let mut assignable = Vec::new();
    for role in [Role::Worker, Role::Worker, Role::Worker, Role::Accountant] {
        assignable.push(sys.popug(role).await);
    }
    let (manager, gone) = (sys.popug(Role::Manager).await, sys.popug(Role::Worker).await);
    sys.patch_account(&sys.admin_token().await, gone.id, json!({ "active": false })).await;
    let everyone: Vec<_> = assignable.iter().chain([&manager, &gone]).collect();
    sys.known_to_task_tracker(&everyone).await;

    let mut drawn: HashMap<String, usize> = HashMap::new();
    for n in 0..120 {
        let task = super::task(&sys, &manager, &format!("Task {n}")).await;
        *drawn.entry(task["assignee_id"].as_str().unwrap().to_owned()).or_default() += 1;
    }

    let expected: HashSet<String> = assignable.iter().map(|p| p.id.to_string()).collect();
    assert_eq!(
        drawn.keys().cloned().collect::<HashSet<_>>(),
        expected,
        "each assignable account drawn, none other: {drawn:?}"
    );
    sys.finish().await;
}

#[tokio::test]
async fn an_idempotency_key_makes_a_retried_create_return_the_same_task() {
    let sys = TestSystem::start().await;
    let (worker, other) = (sys.popug(Role::Worker).await, sys.popug(Role::Worker).await);
    sys.known_to_task_tracker(&[&worker, &other]).await;
    let create = |token: &str, key: &str, title: &str| {
        sys.http
            .post(format!("{}/api/tasks", sys.url))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(&json!({ "title": title }))
            .send()
    };

    let first = ates_tests::read(create(&worker.token, "key-1", "Feed").await.unwrap())
        .await
        .expect(StatusCode::CREATED);
    let retry = ates_tests::read(create(&worker.token, "key-1", "Feed").await.unwrap())
        .await
        .expect(StatusCode::CREATED);
    let changed = ates_tests::read(create(&worker.token, "key-1", "Water").await.unwrap()).await;
    let someone_else = ates_tests::read(create(&other.token, "key-1", "Feed").await.unwrap())
        .await
        .expect(StatusCode::CREATED);
    let bad_key = ates_tests::read(create(&worker.token, " ", "Feed").await.unwrap()).await;

    assert_eq!(retry, first, "the same task, the same status");
    assert_eq!(changed.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(changed.detail().contains("already used for a different task"));
    assert_ne!(someone_else["task_id"], first["task_id"], "keys are per caller");
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
    let tasks = sys.get("/api/tasks", &worker.token).await.expect(StatusCode::OK);
    assert_eq!(tasks["items"].as_array().unwrap().len(), 2, "one task per caller and key");
    sys.finish().await;
}

#[tokio::test]
async fn concurrent_retries_with_one_key_create_one_task() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker]).await;

    let attempts = (0..8).map(|_| {
        sys.http
            .post(format!("{}/api/tasks", sys.url))
            .bearer_auth(&worker.token)
            .header("Idempotency-Key", "same")
            .json(&json!({ "title": "Feed" }))
            .send()
    });
    let replies = futures::future::join_all(attempts).await;

    let mut ids = HashSet::new();
    for reply in replies {
        ids.insert(ates_tests::read(reply.unwrap()).await.expect(StatusCode::CREATED)["task_id"].clone());
    }
    assert_eq!(ids.len(), 1);
    sys.finish().await;
}

#[tokio::test]
async fn a_task_and_its_events_commit_together_and_are_published() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker]).await;

    let task = sys
        .post("/api/tasks", &worker.token, json!({ "title": "Feed", "jira_id": "POP-7" }))
        .await
        .expect(StatusCode::CREATED);

    let events = outbox_events(&sys.system.task_tracker.backbone.pool).await;
    assert_eq!(events.len(), 2);
    let task_id = task["task_id"].as_str().unwrap().parse().unwrap();
    match (&events[0].event, &events[1].event) {
        (DomainEvent::TaskAdded(added), DomainEvent::TaskAssigned(assigned)) => {
            assert_eq!(
                (added.task_id, added.title.as_str(), added.jira_id.as_deref()),
                (task_id, "Feed", Some("POP-7"))
            );
            assert_eq!(added.created_by, worker.id);
            assert_eq!(
                (assigned.task_id, assigned.assignee_id, assigned.previous_assignee_id),
                (task_id, worker.id, None)
            );
            assert_eq!(assigned.reason, ates_schemas::events::AssignReason::Created);
        }
        other => panic!("expected tasks.added then tasks.assigned, got {other:?}"),
    }
    assert_eq!(events[0].meta.event_version, 2);
    let js = sys.jetstream().await;
    ates_testkit::eventually("both events in the TASKS stream", || async {
        let info = js.get_stream("TASKS").await.ok()?.info().await.ok()?.state.messages;
        (info == 2).then_some(())
    })
    .await;
    sys.finish().await;
}
