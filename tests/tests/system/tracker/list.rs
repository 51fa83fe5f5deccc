use ates_tests::Role;
use std::collections::HashSet;

use ates_tests::TestSystem;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn ids(page: &Value) -> Vec<String> {
    page["items"].as_array().unwrap().iter().map(|t| t["task_id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn tasks_are_listed_newest_first_with_filters_and_cursor_pagination() {
    let sys = TestSystem::start().await;
    // a gets every task; b is a manager, who is never assigned one.
    let (a, b) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&a, &b]).await;
    let mut created = Vec::new();
    for n in 0..7 {
        created
            .push(super::task(&sys, &a, &format!("Task {n}")).await["task_id"].as_str().unwrap().to_owned());
    }
    let done = format!("/api/tasks/{}/complete", created[2]);
    sys.post(&done, &a.token, json!({})).await.expect(StatusCode::OK);

    let mut seen = Vec::new();
    let mut path = "/api/tasks?limit=3".to_owned();
    loop {
        let page = sys.get(&path, &a.token).await.expect(StatusCode::OK);
        assert!(page["items"].as_array().unwrap().len() <= 3);
        seen.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/tasks?limit=3&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first, "every task once, newest first");

    let open = sys.get("/api/tasks?status=open", &a.token).await.expect(StatusCode::OK);
    assert_eq!(ids(&open).len(), 6);
    let finished = sys.get("/api/tasks?status=done", &a.token).await.expect(StatusCode::OK);
    assert_eq!(ids(&finished), [created[2].clone()]);
    let mine = sys.get("/api/tasks/mine", &a.token).await.expect(StatusCode::OK);
    assert_eq!(ids(&mine).len(), 7);
    assert!(ids(&sys.get("/api/tasks/mine", &b.token).await.expect(StatusCode::OK)).is_empty());
    let by_assignee =
        sys.get(&format!("/api/tasks?assignee_id={}", a.id), &b.token).await.expect(StatusCode::OK);
    assert_eq!(ids(&by_assignee).into_iter().collect::<HashSet<_>>(), created.iter().cloned().collect());

    for (path, expected) in [
        ("/api/tasks?limit=0", "limit must be between 1 and 200"),
        ("/api/tasks?limit=201", "limit must be between 1 and 200"),
        ("/api/tasks?cursor=garbage", "cursor"),
        ("/api/tasks?status=closed", "query string"),
        ("/api/tasks?assignee_id=42", "query string"),
    ] {
        let reply = sys.get(path, &a.token).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.detail().contains(expected), "{path}: {}", reply.detail());
    }
    sys.finish().await;
}
