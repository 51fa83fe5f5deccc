use ates_tests::Role;
use std::collections::HashMap;

use ates_schemas::DomainEvent;
use ates_schemas::events::AssignReason;
use ates_tests::{TestSystem, outbox_events};
use reqwest::StatusCode;
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn managers_and_admins_shuffle_open_tasks_and_each_reassignment_is_an_event() {
    let sys = TestSystem::start().await;
    let (a, b, manager) =
        (sys.popug(Role::Worker).await, sys.popug(Role::Accountant).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&a, &b, &manager]).await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        tasks.push(super::task(&sys, &manager, &format!("Task {n}")).await);
    }
    let finished = &tasks[0];
    let assignee = if finished["assignee_id"] == a.id.to_string() { &a } else { &b };
    sys.post(
        &format!("/api/tasks/{}/complete", finished["task_id"].as_str().unwrap()),
        &assignee.token,
        json!({}),
    )
    .await
    .expect(StatusCode::OK);
    let before: HashMap<Uuid, Uuid> =
        sys.get("/api/tasks?limit=200", &manager.token).await.expect(StatusCode::OK)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["task_id"].as_str().unwrap().parse().unwrap(),
                    t["assignee_id"].as_str().unwrap().parse().unwrap(),
                )
            })
            .collect();

    let refused = sys.post("/api/tasks/shuffle", &a.token, json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let shuffled = sys.post("/api/tasks/shuffle", &manager.token, json!({})).await.expect(StatusCode::OK);
    assert_eq!(shuffled["reassigned"], 9, "only open tasks");
    let again =
        sys.post("/api/tasks/shuffle", &sys.admin_token().await, json!({})).await.expect(StatusCode::OK);
    assert_eq!(again["reassigned"], 9, "unlimited presses");

    let shuffles: Vec<_> = outbox_events(&sys.system.task_tracker.backbone.pool)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            DomainEvent::TaskAssigned(a) if a.reason == AssignReason::Shuffle => Some(a),
            _ => None,
        })
        .collect();
    assert_eq!(shuffles.len(), 18, "one event per reassignment");
    let finished_id: Uuid = finished["task_id"].as_str().unwrap().parse().unwrap();
    assert!(shuffles.iter().all(|s| s.task_id != finished_id), "a completed task is never reassigned");
    let mut current = before;
    for event in &shuffles {
        assert_eq!(
            event.previous_assignee_id,
            Some(current[&event.task_id]),
            "previous is the assignee before"
        );
        assert!([a.id, b.id].contains(&event.assignee_id), "only workers and accountants");
        current.insert(event.task_id, event.assignee_id);
    }
    sys.finish().await;
}

/// More open tasks than one outbox statement of a shuffle holds: every task is reassigned once,
/// with one event each, in one transaction.
#[tokio::test]
async fn a_shuffle_of_more_tasks_than_one_outbox_write_holds_writes_every_event() {
    let sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let pool = &sys.system.task_tracker.backbone.pool;
    let count = 2 * ates_task_tracker::tasks::SHUFFLE_WRITE + 1;
    let tasks: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    sqlx::query(
        "INSERT INTO tasks (task_id, title, assignee_id, created_by)
         SELECT id, 'Bulk task', $2, $3 FROM unnest($1::uuid[]) AS id",
    )
    .bind(&tasks)
    .bind(worker.id)
    .bind(manager.id)
    .execute(pool)
    .await
    .unwrap();

    let shuffled = sys.post("/api/tasks/shuffle", &manager.token, json!({})).await.expect(StatusCode::OK);
    assert_eq!(shuffled["reassigned"], count);
    let mut reassigned: Vec<Uuid> = outbox_events(pool)
        .await
        .into_iter()
        .filter_map(|e| match e.event {
            DomainEvent::TaskAssigned(a) if a.reason == AssignReason::Shuffle => {
                assert_eq!((a.previous_assignee_id, a.assignee_id), (Some(worker.id), worker.id));
                Some(a.task_id)
            }
            _ => None,
        })
        .collect();
    reassigned.sort();
    let mut expected = tasks;
    expected.sort();
    assert_eq!(reassigned, expected, "one event for every task, none twice");
    sys.finish().await;
}

#[tokio::test]
async fn concurrent_shuffles_and_completions_leave_a_consistent_state() {
    let sys = TestSystem::start().await;
    let popugs =
        [sys.popug(Role::Worker).await, sys.popug(Role::Worker).await, sys.popug(Role::Accountant).await];
    let manager = sys.popug(Role::Manager).await;
    sys.known_to_task_tracker(&popugs.iter().chain([&manager]).collect::<Vec<_>>()).await;
    let mut task_ids = Vec::new();
    for n in 0..40 {
        task_ids.push(
            super::task(&sys, &manager, &format!("Task {n}")).await["task_id"].as_str().unwrap().to_owned(),
        );
    }

    let shuffles = (0..4).map(|_| sys.post("/api/tasks/shuffle", &manager.token, json!({})));
    let shared = &sys;
    let completions = popugs.iter().flat_map(|p| {
        task_ids.iter().map(move |id| async move {
            shared.post(&format!("/api/tasks/{id}/complete"), &p.token, json!({})).await
        })
    });
    let (shuffled, completed) =
        tokio::join!(futures::future::join_all(shuffles), futures::future::join_all(completions));

    let reassigned: u64 =
        shuffled.into_iter().map(|r| r.expect(StatusCode::OK)["reassigned"].as_u64().unwrap()).sum();
    let mut completed_ok = 0;
    for reply in completed {
        match reply.status {
            StatusCode::OK => completed_ok += 1,
            StatusCode::FORBIDDEN | StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}: {reply:?}"),
        }
    }
    let events = outbox_events(&sys.system.task_tracker.backbone.pool).await;
    let mut assignee: HashMap<Uuid, Uuid> = HashMap::new();
    let mut done: HashMap<Uuid, Uuid> = HashMap::new();
    let mut shuffle_events = 0;
    for event in &events {
        match &event.event {
            DomainEvent::TaskAssigned(a) => {
                assert!(!done.contains_key(&a.task_id), "no assignment after completion");
                assert_eq!(
                    a.previous_assignee_id,
                    assignee.get(&a.task_id).copied(),
                    "the chain of assignees holds"
                );
                if a.reason == AssignReason::Shuffle {
                    shuffle_events += 1;
                }
                assignee.insert(a.task_id, a.assignee_id);
            }
            DomainEvent::TaskCompleted(c) => {
                assert_eq!(
                    Some(&c.assignee_id),
                    assignee.get(&c.task_id),
                    "completed by the assignee of the moment"
                );
                assert!(done.insert(c.task_id, c.assignee_id).is_none(), "completed once");
            }
            _ => {}
        }
    }
    assert_eq!(shuffle_events, reassigned, "exactly one assignment event per reassignment");
    assert_eq!(done.len(), completed_ok);
    for id in &task_ids {
        let task = sys.get(&format!("/api/tasks/{id}"), &manager.token).await.expect(StatusCode::OK);
        let task_id: Uuid = id.parse().unwrap();
        assert_eq!(
            task["assignee_id"].as_str().unwrap().parse::<Uuid>().unwrap(),
            assignee[&task_id],
            "the table agrees with the events"
        );
        assert_eq!(task["status"] == "done", done.contains_key(&task_id));
    }
    sys.finish().await;
}

#[tokio::test]
async fn a_shuffle_while_the_last_assignable_account_is_deactivated_is_a_conflict() {
    let sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    super::task(&sys, &manager, "Sweep the perch").await;
    let pool = &sys.system.task_tracker.backbone.pool;

    // Hold the tasks so the shuffle waits after it has begun, then deactivate the only
    // assignable account (as its accounts.updated would) before letting it go on.
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE tasks IN EXCLUSIVE MODE").execute(&mut *hold).await.unwrap();
    let shuffle = sys.post("/api/tasks/shuffle", &manager.token, json!({}));
    let deactivate = async {
        sys.waiting_for_lock("pool AS").await;
        sqlx::query("UPDATE accounts SET active = false WHERE account_id = $1")
            .bind(worker.id)
            .execute(&mut *hold)
            .await
            .unwrap();
        hold.commit().await.unwrap();
    };
    let (reply, ()) = tokio::join!(shuffle, deactivate);

    assert_eq!(reply.status, StatusCode::CONFLICT, "{reply:?}");
    assert!(reply.detail().contains("no active worker or accountant"), "{reply:?}");
    let task = &sys.get("/api/tasks?limit=10", &manager.token).await.expect(StatusCode::OK)["items"][0];
    assert_eq!(task["assignee_id"], worker.id.to_string(), "nothing was reassigned");
    sys.finish().await;
}
