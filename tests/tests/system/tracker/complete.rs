use ates_schemas::DomainEvent;
use ates_tests::Role;
use ates_tests::{TestSystem, outbox_events};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn only_the_assignee_completes_a_task_and_only_once() {
    let sys = TestSystem::start().await;
    let (worker, admin) = (sys.popug(Role::Worker).await, sys.admin_token().await);
    sys.known_to_task_tracker(&[&worker]).await;
    let task = super::task(&sys, &worker, "Feed").await;
    let path = format!("/api/tasks/{}/complete", task["task_id"].as_str().unwrap());

    let by_admin = sys.post(&path, &admin, json!({})).await;
    assert_eq!(by_admin.status, StatusCode::FORBIDDEN, "{by_admin:?}");
    assert!(by_admin.detail().contains("Only the task's assignee"));
    let done = sys.post(&path, &worker.token, json!({})).await.expect(StatusCode::OK);
    assert_eq!(done["status"], "done");
    assert!(done["completed_at"].is_string());
    let again = sys.post(&path, &worker.token, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.detail().contains("already completed"));
    let unknown =
        sys.post(&format!("/api/tasks/{}/complete", uuid::Uuid::new_v4()), &worker.token, json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let malformed = sys.post("/api/tasks/not-a-uuid/complete", &worker.token, json!({})).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let events = outbox_events(&sys.system.task_tracker.backbone.pool).await;
    let completions: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::TaskCompleted(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(completions.len(), 1, "one tasks.completed");
    assert_eq!(completions[0].assignee_id, worker.id);
    sys.finish().await;
}

#[tokio::test]
async fn a_token_issued_before_a_role_change_is_refused_by_the_task_tracker() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker]).await;
    assert_eq!(sys.get("/api/tasks/mine", &worker.token).await.status, StatusCode::OK);

    sys.patch_account(&sys.admin_token().await, worker.id, json!({ "role": "manager" })).await;

    let refused = ates_testkit::eventually("the old token refused", || async {
        let reply = sys.get("/api/tasks/mine", &worker.token).await;
        (reply.status == StatusCode::UNAUTHORIZED).then_some(reply)
    })
    .await;
    assert!(refused.detail().to_lowercase().contains("token outdated"), "{refused:?}");
    sys.finish().await;
}
