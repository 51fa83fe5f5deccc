use ates_tests::Role;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

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

/// The tracker's schema alone (its accounts replica and `assignees`, which a draw numbers),
/// migrated after the replica received `accounts`, each `(role, active, state known)`.
async fn tracker_schema_after(accounts: &[(&str, bool, bool)]) -> (ates_testkit::TestDb, sqlx::PgPool) {
    use ates_messaging::db;

    let testdb = ates_testkit::database().await;
    let pool = db::connect(&testdb.url, "task_tracker", 10).unwrap();
    db::migrate(&pool, "task_tracker", ates_accounts_replica::MIGRATIONS.iter()).await.unwrap();
    for (role, active, known) in accounts {
        sqlx::query("INSERT INTO accounts (account_id, role, active, state_time) VALUES ($1, $2, $3, $4)")
            .bind(uuid::Uuid::new_v4())
            .bind(role)
            .bind(active)
            .bind(known.then(chrono::Utc::now))
            .execute(&pool)
            .await
            .unwrap();
    }
    let migrations = ates_accounts_replica::MIGRATIONS.iter().chain(ates_task_tracker::MIGRATIONS.iter());
    db::migrate(&pool, "task_tracker", migrations).await.unwrap();
    (testdb, pool)
}

/// What is wrong with `assignees`: it must number exactly the assignable accounts from 0,
/// without a gap, or a draw finds a slot empty or an account that may not be drawn.
async fn assignees_problems(pool: &sqlx::PgPool) -> Vec<String> {
    let (count, slots, first, last): (i64, i64, Option<i32>, Option<i32>) =
        sqlx::query_as("SELECT count(*), count(DISTINCT slot), min(slot), max(slot) FROM assignees")
            .fetch_one(pool)
            .await
            .unwrap();
    let mismatched: Vec<(uuid::Uuid, bool)> = sqlx::query_as(
        "SELECT account_id, s.slot IS NOT NULL FROM accounts a FULL JOIN assignees s USING (account_id)
         WHERE (s.slot IS NOT NULL) IS DISTINCT FROM
               coalesce(a.active AND a.role IN ('accountant', 'worker') AND a.state_time IS NOT NULL, false)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut problems = Vec::new();
    if count > 0 && (first, last, slots) != (Some(0), Some(i32::try_from(count).unwrap() - 1), count) {
        problems.push(format!("{count} assignees in slots {first:?}..={last:?}, {slots} distinct"));
    }
    for (account, numbered) in mismatched {
        let what = if numbered { "numbered but not assignable" } else { "assignable but not numbered" };
        problems.push(format!("{account}: {what}"));
    }
    problems
}

#[tokio::test]
async fn every_assignable_account_keeps_one_slot_without_gaps_through_concurrent_changes() {
    use rand::Rng as _;

    let before = [
        ("worker", true, true),
        ("accountant", true, true),
        ("worker", false, true),
        ("worker", true, false),
    ];
    let (db, pool) = tracker_schema_after(&before).await;
    assert_eq!(assignees_problems(&pool).await, Vec::<String>::new(), "after the migration");
    let numbered: i64 = sqlx::query_scalar("SELECT count(*) FROM assignees").fetch_one(&pool).await.unwrap();
    assert_eq!(numbered, 2, "the migration numbers the two assignable accounts it found");
    // These come after, as the replica would write them (some still waiting for their
    // accounts.created).
    sqlx::query(
        "INSERT INTO accounts (account_id, role, active, state_time)
         SELECT gen_random_uuid(), (ARRAY['worker', 'accountant', 'manager', 'admin'])[1 + i % 4], i % 5 <> 0,
                CASE WHEN i % 7 = 0 THEN NULL ELSE now() END
         FROM generate_series(1, 200) i",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(assignees_problems(&pool).await, Vec::<String>::new(), "after the inserts");
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT account_id FROM accounts ORDER BY account_id")
        .fetch_all(&pool)
        .await
        .unwrap();

    // Eight writers at once, as instances applying account events would be, each changing two
    // accounts a transaction in either order: deactivations, role changes, accounts.created. A
    // gap left by one writer could be closed by the next, so each looks before it commits,
    // while it is the only writer. Meanwhile creations draw, and always find someone.
    let writing = Arc::new(AtomicBool::new(true));
    let writers = (0..8).map(|_| {
        let (pool, ids) = (pool.clone(), ids.clone());
        tokio::spawn(async move {
            for _ in 0..40 {
                let picks: Vec<uuid::Uuid> = {
                    let mut rng = rand::rng();
                    (0..2).map(|_| ids[rng.random_range(0..ids.len())]).collect()
                };
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("UPDATE accounts SET active = NOT active WHERE account_id = $1")
                    .bind(picks[0])
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "UPDATE accounts SET state_time = coalesce(state_time, now()),
                         role = CASE role WHEN 'worker' THEN 'manager' ELSE 'worker' END
                     WHERE account_id = $1",
                )
                .bind(picks[1])
                .execute(&mut *tx)
                .await
                .unwrap();
                let (count, next): (i64, Option<i32>) =
                    sqlx::query_as("SELECT count(*), max(slot) + 1 FROM assignees")
                        .fetch_one(&mut *tx)
                        .await
                        .unwrap();
                assert_eq!(count, i64::from(next.unwrap_or(0)), "slots 0 to {next:?} hold {count} accounts");
                tx.commit().await.unwrap();
            }
        })
    });
    let drawers = (0..2).map(|_| {
        let (pool, writing) = (pool.clone(), writing.clone());
        tokio::spawn(async move {
            let new = ates_task_tracker::domain::task::NewTask {
                title: "Count the seeds".into(),
                jira_id: None,
                description: String::new(),
            };
            let mut draws = 0;
            // At least once, however soon the writers are done.
            while draws == 0 || writing.load(Ordering::SeqCst) {
                // One snapshot for the draw and the look at who was drawn.
                let mut tx = pool.begin().await.unwrap();
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                let (task, creator) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
                let created = ates_task_tracker::tasks::create(&mut tx, task, creator, &new, task).await;
                let assignee = created.expect("someone to draw while others are assignable").assignee_id;
                let (assignable,): (bool,) = sqlx::query_as(
                    "SELECT active AND role IN ('accountant', 'worker') AND state_time IS NOT NULL
                     FROM accounts WHERE account_id = $1",
                )
                .bind(assignee)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
                assert!(assignable, "drew {assignee}, who is not assignable");
                tx.rollback().await.unwrap();
                draws += 1;
            }
            draws
        })
    });
    let drawers: Vec<_> = drawers.collect();
    for writer in futures::future::join_all(writers).await {
        writer.expect("a writer failed (a deadlock would fail its statement)");
    }
    writing.store(false, Ordering::SeqCst);
    for drawer in futures::future::join_all(drawers).await {
        assert!(drawer.expect("a draw failed") > 0, "draws while accounts changed");
    }
    assert_eq!(assignees_problems(&pool).await, Vec::<String>::new(), "after concurrent changes");

    sqlx::query("DELETE FROM accounts WHERE account_id = ANY($1)")
        .bind(&ids[..50])
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(assignees_problems(&pool).await, Vec::<String>::new(), "after deletions");

    // From a session that names the schema rather than setting it (an operator's psql).
    let elsewhere = sqlx::PgPool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE task_tracker.accounts SET active = NOT active WHERE account_id = ANY($1)")
        .bind(&ids[50..60])
        .execute(&elsewhere)
        .await
        .expect("a write that names the schema");
    assert_eq!(assignees_problems(&pool).await, Vec::<String>::new(), "after writes from another session");
    // A writer whose snapshot is older than its statement would number from a stale count.
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await.unwrap();
    let refused = sqlx::query("UPDATE accounts SET active = NOT active WHERE account_id = $1")
        .bind(ids[60])
        .execute(&mut *tx)
        .await
        .expect_err("a write under REPEATABLE READ");
    assert!(refused.to_string().contains("READ COMMITTED only"), "{refused}");
    drop(tx);
    sqlx::query("TRUNCATE accounts").execute(&pool).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM assignees").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0, "nobody left to draw once the replica is emptied");
}
