//! What an operator watches: where work waits (outbox backlog, consumer lag, parked messages,
//! stream sizes) and how long ago the last day was closed.

use std::time::Duration;

use ates_messaging::waiting::{ConsumerLag, OutboxBacklog, Waiting};
use ates_testkit::eventually;
use ates_tests::{Role, TestSystem, outbox_events};
use reqwest::StatusCode;
use serde_json::json;

fn lag<'a>(waiting: &'a Waiting, consumer: &str) -> &'a ConsumerLag {
    waiting
        .consumers
        .iter()
        .find(|c| c.consumer == consumer)
        .unwrap_or_else(|| panic!("{consumer} in {waiting:?}"))
}

fn stream_messages(waiting: &Waiting, stream: &str) -> Option<u64> {
    waiting.streams.iter().find(|s| s.stream == stream).and_then(|s| s.messages)
}

#[tokio::test]
async fn where_work_waits_shows_the_outbox_backlog_while_nats_is_down_and_what_consumers_parked() {
    let mut sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    sys.settled().await;
    let tracker = sys.system.task_tracker.backbone.clone();
    let accounting = sys.system.accounting.backbone.clone();

    let calm = tracker.waiting().await;
    assert_eq!(calm.service, "task_tracker");
    assert_eq!(calm.outbox, Some(OutboxBacklog { pending: 0, oldest_seconds: 0.0 }), "{calm:?}");
    let accounts = lag(&calm, "task-tracker-accounts");
    assert_eq!((accounts.pending, accounts.parked), (Some(0), Some(0)), "{calm:?}");
    let tasks = sys.jetstream().await.get_stream("TASKS").await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(stream_messages(&calm, "TASKS"), Some(tasks));
    assert_eq!(accounting.waiting().await.outbox.map(|o| o.pending), Some(0));

    // With the broker down, an accepted request's events wait in the outbox and age there.
    sys.nats.stop().await;
    let body = json!({ "title": "Feed the birds" });
    sys.post("/api/tasks", &manager.token, body).await.expect(StatusCode::CREATED);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let down = tracker.waiting().await;
    let outbox = down.outbox.expect("the database still answers");
    assert_eq!(outbox.pending, 2, "tasks.added and tasks.assigned wait: {down:?}");
    assert!(outbox.oldest_seconds >= 1.0, "the oldest has waited over a second: {down:?}");
    assert_eq!(lag(&down, "task-tracker-accounts").pending, None, "NATS cannot tell: {down:?}");
    sys.nats.restart().await;
    eventually("the outbox to drain", || async {
        (tracker.waiting().await.outbox.map(|o| o.pending) == Some(0)).then_some(())
    })
    .await;

    // A message no consumer can read is parked, and each consumer of the stream counts its own.
    let impostor = sys.nats_as(&ates_task_tracker::BUS).connect("garbage").await.unwrap();
    let js = ates_messaging::nats::jetstream(impostor, Duration::from_secs(5));
    js.publish("tasks.assigned.v1", "not an event".into()).await.unwrap().await.unwrap();
    let parked = eventually("the garbage to be parked", || async {
        let waiting = accounting.waiting().await;
        (lag(&waiting, "accounting-tasks").parked == Some(1)).then_some(waiting)
    })
    .await;
    assert_eq!(lag(&parked, "accounting-accounts").parked, Some(0), "{parked:?}");
    assert_eq!(
        lag(&parked, "accounting-completions").parked,
        Some(0),
        "it is not sent assignments: {parked:?}"
    );
    assert_eq!(stream_messages(&parked, "DLQ").map(|n| n >= 1), Some(true), "{parked:?}");
    let analytics = sys.system.analytics.backbone.waiting().await;
    assert_eq!(lag(&analytics, "analytics-tasks").parked, Some(0), "nor is analytics: {analytics:?}");

    parked.record();
    let metrics = sys.http.get(format!("{}/metrics", sys.url)).send().await.unwrap().text().await.unwrap();
    for series in [
        r#"ates_dlq_messages{consumer="accounting-tasks"}"#,
        r#"ates_consumer_pending{consumer="accounting-tasks"}"#,
        r#"ates_outbox_pending{service="accounting"}"#,
        r#"ates_outbox_oldest_pending_seconds{service="accounting"}"#,
        r#"ates_stream_messages{stream="ACCOUNTING"}"#,
        "# HELP ates_dlq_messages Messages parked on dlq.<consumer>",
    ] {
        assert!(metrics.contains(series), "{series} in /metrics:\n{metrics}");
    }
    sys.finish_with_parked(1).await;
}

#[tokio::test]
async fn the_age_of_the_last_closed_day_is_one_once_yesterday_is_closed() {
    let sys = TestSystem::start().await;
    let accounting = &sys.system.accounting;
    let zone = sys.config.accounting().unwrap().calendar.timezone;
    let age = || ates_accounting::closing::last_closed_day_age(&accounting.backbone.pool, zone);
    assert_eq!(age().await.unwrap(), 1, "an empty ledger has nothing to close");

    let admin = sys.admin_token().await;
    let today = ates_accounting::domain::calendar::business_date(chrono::Utc::now(), zone);
    let two_days_ago = today - chrono::Days::new(2);
    sqlx::query("UPDATE billing_state SET last_closed = $1")
        .bind(two_days_ago)
        .execute(&accounting.backbone.pool)
        .await
        .unwrap();
    assert_eq!(age().await.unwrap(), 2, "yesterday is not closed yet");
    let yesterday = today - chrono::Days::new(1);
    let path = format!("/api/accounting/billing-days/{yesterday}/close");
    sys.call(reqwest::Method::POST, &path, Some(&admin), None).await.expect(StatusCode::OK);
    assert_eq!(age().await.unwrap(), 1);
    sys.finish().await;
}

/// The correlation id of each event about `task` in `events`, by event name.
fn correlations(events: &[ates_schemas::ReceivedEvent]) -> Vec<(String, Option<uuid::Uuid>)> {
    events.iter().map(|e| (e.meta.event_name.clone(), e.meta.correlation_id)).collect()
}

#[tokio::test]
async fn one_correlation_id_follows_a_request_through_every_event_it_causes_and_the_logs() {
    use ates_schemas::DomainEvent;
    use uuid::Uuid;

    let sys = TestSystem::start().await;
    let (worker, manager, admin) =
        (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await, sys.admin_token().await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let send = |path: &str, token: &str, id: &str| {
        sys.http
            .post(format!("{}{path}", sys.url))
            .bearer_auth(token)
            .header("X-Correlation-Id", id)
            .json(&json!({ "title": "Feed the birds" }))
            .send()
    };
    let echoed = |response: &reqwest::Response| {
        response.headers()["x-correlation-id"].to_str().unwrap().parse::<Uuid>().expect("a UUID")
    };

    let (created_by, done_by, closed_by) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let created = send("/api/tasks", &manager.token, &created_by.to_string()).await.unwrap();
    assert_eq!((created.status(), echoed(&created)), (StatusCode::CREATED, created_by), "echoed");
    let task: serde_json::Value = created.json().await.unwrap();
    let task_id: Uuid = task["task_id"].as_str().unwrap().parse().unwrap();
    let junk = sys.http.get(format!("{}/api/tasks/mine", sys.url)).bearer_auth(&worker.token);
    let junk = junk.header("X-Correlation-Id", "not-a-uuid").send().await.unwrap();
    assert_ne!(echoed(&junk), created_by, "anything but a UUID gets a new id");
    let failed = sys.http.get(format!("{}/api/nothing-here", sys.url)).send().await.unwrap();
    assert!(failed.headers().contains_key("x-correlation-id"), "errors carry one too");

    // Accounting prices a task from the first event it hears of it, and completions have a
    // consumer of their own: let the creation's events arrive first, so the price is theirs.
    sys.settled().await;
    let path = format!("/api/tasks/{task_id}/complete");
    assert_eq!(send(&path, &worker.token, &done_by.to_string()).await.unwrap().status(), StatusCode::OK);
    sys.settled().await;
    let today = ates_accounting::domain::calendar::business_date(
        chrono::Utc::now(),
        sys.config.accounting().unwrap().calendar.timezone,
    );
    let close = format!("/api/accounting/billing-days/{today}/close");
    let closed = sys.http.post(format!("{}{close}", sys.url)).bearer_auth(&admin);
    let closed = closed.header("X-Correlation-Id", closed_by.to_string()).send().await.unwrap();
    assert_eq!((closed.status(), echoed(&closed)), (StatusCode::OK, closed_by));

    let tracked = outbox_events(&sys.system.task_tracker.backbone.pool).await;
    let about_task: Vec<_> = tracked
        .into_iter()
        .filter(|e| ates_accounting::domain::posting::task_of(e) == Some(task_id))
        .collect();
    assert_eq!(
        correlations(&about_task),
        [
            ("tasks.added".into(), Some(created_by)),
            ("tasks.assigned".into(), Some(created_by)),
            ("tasks.completed".into(), Some(done_by))
        ]
    );
    let accounting = &sys.system.accounting.backbone.pool;
    let ledger = eventually("the payout email's event", || async {
        let events = outbox_events(accounting).await;
        events.iter().any(|e| matches!(e.event, DomainEvent::PayoutSent(_))).then_some(events)
    })
    .await;
    let carried = |wanted: &dyn Fn(&DomainEvent) -> bool| -> Vec<Option<Uuid>> {
        ledger.iter().filter(|e| wanted(&e.event)).map(|e| e.meta.correlation_id).collect()
    };
    let kind = |e: &DomainEvent, kind: ates_schemas::events::TransactionKind| matches!(e, DomainEvent::TransactionApplied(t) if t.kind == kind && (t.task_id == Some(task_id) || t.task_id.is_none()));
    use ates_schemas::events::TransactionKind::{AssignFee, CompletionReward, Payout};
    let priced = |e: &DomainEvent| matches!(e, DomainEvent::TaskPriced(p) if p.task_id == task_id);
    assert_eq!(carried(&priced), [Some(created_by)], "the price follows the task's creation");
    assert_eq!(carried(&|e| kind(e, AssignFee)), [Some(created_by)], "the fee follows the assignment");
    assert_eq!(carried(&|e| kind(e, CompletionReward)), [Some(done_by)], "the reward follows the completion");
    assert_eq!(carried(&|e| kind(e, Payout)), [Some(closed_by)], "the payout follows the close");
    assert_eq!(carried(&|e| matches!(e, DomainEvent::BillingDayClosed(_))), [Some(closed_by)]);
    assert_eq!(carried(&|e| matches!(e, DomainEvent::PayoutSent(_))), [Some(closed_by)], "and its email");

    let logs = ates_tests::logs();
    let lines =
        |id: Uuid| logs.lines().filter(|l| l.contains(&id.to_string())).collect::<Vec<_>>().join("\n");
    let created_lines = lines(created_by);
    for expected in ["request", "event recorded", "applied", "status=201"] {
        assert!(
            created_lines.contains(expected),
            "{expected} in the lines of {created_by}:\n{created_lines}"
        );
    }
    let closed_lines = lines(closed_by);
    for expected in ["closed a billing day", "payout email sent"] {
        assert!(closed_lines.contains(expected), "{expected} in the lines of {closed_by}:\n{closed_lines}");
    }
    sys.finish().await;
}

#[tokio::test]
async fn the_audit_passes_when_every_event_arrived_fails_when_one_went_missing_and_passes_once_it_is_republished()
 {
    use ates_schemas::Envelope;
    use ates_schemas::events::{AssignReason, TaskAssignedV1};
    use secrecy::ExposeSecret as _;
    use uuid::Uuid;

    let sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let task = sys.post("/api/tasks", &manager.token, json!({ "title": "Feed the birds" })).await;
    let task_id = task.expect(StatusCode::CREATED)["task_id"].as_str().unwrap().to_owned();
    let path = format!("/api/tasks/{task_id}/complete");
    sys.post(&path, &worker.token, json!({})).await.expect(StatusCode::OK);
    sys.settled().await;
    let database_url = sys.config.backbone.database_url.as_ref().unwrap().expose_secret().to_owned();
    let js = sys.jetstream().await;
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let audit = || ates::audit::audit(&database_url, &js, since, Duration::from_secs(60), |_| {});

    let clean = audit().await.unwrap();
    assert!(clean.ok(), "{}", clean.render());
    let delivered = |consumer: &str| {
        let delivery = clean.deliveries.iter().find(|d| d.consumer == consumer).unwrap();
        (delivery.events, delivery.applied)
    };
    assert_eq!(delivered("accounting-tasks"), (2, 2), "added and assigned: {}", clean.render());
    assert_eq!(delivered("accounting-completions"), (1, 1), "completed: {}", clean.render());
    assert_eq!(delivered("analytics-tasks"), (2, 2), "added and completed: {}", clean.render());
    assert_eq!(
        clean.deliveries.len(),
        3 + 3 + 1,
        "auth's three consumers, the tracker's three, accounting's one"
    );
    assert!(clean.money.iter().all(|m| m.events == 1 && m.matched == 1), "{}", clean.render());

    // An assignment the outbox marked published ten minutes ago that never reached the stream.
    let tracker = &sys.system.task_tracker.backbone.pool;
    let ten_minutes_ago = chrono::Utc::now() - chrono::Duration::minutes(10);
    let assigned = TaskAssignedV1 {
        task_id: Uuid::now_v7(),
        assignee_id: worker.id,
        previous_assignee_id: None,
        reason: AssignReason::Created,
    };
    let lost = Envelope::at("task-tracker", ten_minutes_ago, assigned);
    sqlx::query(
        "INSERT INTO outbox (event_id, subject, payload, created_at, published_at) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(lost.event_id)
    .bind("tasks.assigned.v1")
    .bind(serde_json::to_vec(&lost).unwrap())
    .bind(ten_minutes_ago)
    .execute(tracker)
    .await
    .unwrap();

    let broken = audit().await.unwrap();
    assert!(!broken.ok());
    let missing =
        |consumer: &str| &broken.deliveries.iter().find(|d| d.consumer == consumer).unwrap().missing;
    assert_eq!(missing("accounting-tasks"), &[lost.event_id], "{}", broken.render());
    assert!(
        missing("analytics-tasks").is_empty(),
        "an assignment is not analytics' to apply: {}",
        broken.render()
    );
    let fees = broken.money.iter().find(|m| m.event == "tasks.assigned").unwrap();
    assert_eq!(fees.missing, [lost.event_id], "and its fee: {}", broken.render());
    assert!(broken.render().contains(&lost.event_id.to_string()), "the report names it");

    let window =
        (ten_minutes_ago - chrono::Duration::seconds(1), ten_minutes_ago + chrono::Duration::seconds(1));
    let republished =
        ates_messaging::outbox::republish(tracker, &js, window.0, window.1, |_| {}).await.unwrap();
    assert_eq!(republished.stored, 1, "{republished:?}");
    sys.settled().await;
    let repaired = audit().await.unwrap();
    assert!(repaired.ok(), "{}", repaired.render());
    sys.finish().await;
}

#[tokio::test]
async fn a_retried_create_is_answered_with_the_correlation_id_its_events_carry() {
    use uuid::Uuid;

    let sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let keyed = |id: Uuid| {
        let request = sys.http.post(format!("{}/api/tasks", sys.url)).bearer_auth(&manager.token);
        let request =
            request.header("Idempotency-Key", "feed-once").header("X-Correlation-Id", id.to_string());
        request.json(&json!({ "title": "Feed the birds once" })).send()
    };
    let echoed = |response: reqwest::Response| {
        assert_eq!(response.status(), StatusCode::CREATED);
        response.headers()["x-correlation-id"].to_str().unwrap().parse::<Uuid>().unwrap()
    };
    let (first, retry) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(echoed(keyed(first).await.unwrap()), first);
    assert_eq!(echoed(keyed(retry).await.unwrap()), first, "the retry points at the first request");
    let events = outbox_events(&sys.system.task_tracker.backbone.pool).await;
    let created: Vec<_> = events.iter().filter(|e| e.meta.event_name == "tasks.added").collect();
    assert_eq!(created.len(), 1, "one task");
    assert_eq!(created[0].meta.correlation_id, Some(first));
    sys.finish().await;
}

#[tokio::test]
async fn the_operations_view_is_for_admins_and_each_producer_re_drives_only_its_own_stream() {
    let sys = TestSystem::start().await;
    let (worker, admin) = (sys.popug(Role::Worker).await, sys.admin_token().await);
    for service in ["auth", "task-tracker", "accounting", "analytics"] {
        let path = format!("/api/ops/{service}");
        sys.get(&path, &worker.token).await.expect(StatusCode::FORBIDDEN);
        let view = sys.get(&path, &admin).await.expect(StatusCode::OK);
        assert_eq!(view["parked"], json!([]), "{view}");
        assert_eq!(view["parked_known"], json!(true), "{view}");
        let closed = view.get("last_closed_day").expect("every view says its last closed day");
        assert!(service == "accounting" || closed.is_null(), "only accounting closes days: {view}");
    }

    // Something parked from TASKS: only the task tracker re-drives it, and only while its
    // stream still holds the same message.
    let impostor = sys.nats_as(&ates_task_tracker::BUS).connect("garbage").await.unwrap();
    let js = ates_messaging::nats::jetstream(impostor, Duration::from_secs(5));
    js.publish("tasks.completed.v1", "not an event".into()).await.unwrap().await.unwrap();
    let parked = eventually("the garbage to be parked by every consumer of TASKS", || async {
        let view = sys.get("/api/ops/task-tracker", &admin).await.expect(StatusCode::OK);
        (view["parked"].as_array().unwrap().len() == 2).then_some(view)
    })
    .await;
    let first = &parked["parked"][0];
    assert_eq!((first["stream"].as_str(), first["reason"].as_str()), (Some("TASKS"), Some("undecodable")));
    let sequence = first["sequence"].as_u64().unwrap();
    assert_eq!(first["redrive"], json!(format!("/api/ops/task-tracker/parked/{sequence}/redrive")));
    let accounting = sys.get("/api/ops/accounting", &admin).await.expect(StatusCode::OK);
    assert_eq!(accounting["parked"], json!([]), "parked from TASKS, not from ACCOUNTING: {accounting}");

    let system = &sys;
    let redrive = |service: &str, sequence: u64, token: &str| {
        let path = format!("/api/ops/{service}/parked/{sequence}/redrive");
        let token = token.to_owned();
        async move { system.call(reqwest::Method::POST, &path, Some(&token), None).await }
    };
    redrive("task-tracker", sequence, &worker.token).await.expect(StatusCode::FORBIDDEN);
    let elsewhere = redrive("auth", sequence, &admin).await;
    assert_eq!(elsewhere.status, StatusCode::CONFLICT, "{:?}", elsewhere.body);
    assert!(elsewhere.detail().contains("re-drive it where TASKS's producer runs"), "{}", elsewhere.detail());
    redrive("task-tracker", 999_999, &admin).await.expect(StatusCode::NOT_FOUND);

    let done = redrive("task-tracker", sequence, &admin).await.expect(StatusCode::OK);
    assert_eq!(done["subject"], json!("tasks.completed.v1"));
    let again = redrive("task-tracker", sequence, &admin).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "re-driven already: {:?}", again.body);
    // Published again, it is still garbage: parked again, by each consumer.
    sys.finish_with_parked(3).await;
}
