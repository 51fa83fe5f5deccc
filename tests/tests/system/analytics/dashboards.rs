use ates_tests::Role;
use ates_tests::{TestSystem, read};
use chrono::{Datelike, Duration, NaiveDate, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::history::History;

/// Waits until analytics has applied everything and returns the days answer.
pub async fn settled_days(
    sys: &TestSystem,
    admin: &str,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
) -> Value {
    sys.settled().await;
    sys.get(&format!("/api/analytics/days?from={from}&to={to}"), admin).await.expect(StatusCode::OK)
}

#[tokio::test]
async fn the_dashboards_equal_an_oracle_over_several_days_whatever_the_order_and_duplicates() {
    let sys = TestSystem::start_without_ledger().await;
    let admin = sys.admin_token().await;
    let history = History::generate(7, 12);
    history.publish(&sys.jetstream().await, 7).await;

    let days = settled_days(&sys, &admin, history.first, history.last).await;

    assert_eq!(days, Value::Array(history.days(history.first, history.last)));
    // One record per applied event, the read model's own: the consumers keep none besides it.
    let pool = &sys.system.analytics.backbone.pool;
    let records: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM processed_events WHERE consumer LIKE 'analytics-%'
                 AND consumer <> 'analytics-accounts'),
                (SELECT count(*) FROM projection_applied)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(records, (0, history.event_count()));
    let today = days.as_array().unwrap().last().unwrap();
    let summary = sys.get("/api/analytics/summary", &admin).await.expect(StatusCode::OK);
    assert_eq!(summary["management_earnings"], today["management_earnings"]);
    assert_eq!(summary["negative_balance_accounts"], today["negative_balance_accounts"]);

    let best_of = |from: chrono::NaiveDate, to: chrono::NaiveDate| {
        days.as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                let date: chrono::NaiveDate = d["date"].as_str().unwrap().parse().unwrap();
                date >= from && date <= to && !d["most_expensive_task"].is_null()
            })
            .map(|d| d["most_expensive_task"].clone())
            .max_by_key(|t| {
                (
                    t["completion_reward"].as_i64().unwrap(),
                    t["task_id"].as_str().unwrap().parse::<uuid::Uuid>().unwrap(),
                )
            })
    };
    let last = history.last;
    let monday = last - Duration::days(i64::from(last.weekday().num_days_from_monday()));
    let month = last.with_day(1).unwrap();
    for (query, from, to) in [
        (format!("from={}&to={}", history.first, last), history.first, last),
        (format!("period=week&date={last}"), monday, monday + Duration::days(6)),
        (format!("period=month&date={last}"), month, last),
    ] {
        let reply = sys.get(&format!("/api/analytics/most-expensive-task?{query}"), &admin).await;
        match best_of(from, to) {
            Some(task) => assert_eq!(reply.expect(StatusCode::OK), task, "{query}"),
            None => assert_eq!(reply.status, StatusCode::NOT_FOUND, "{query}"),
        }
    }
    let empty = last + Duration::days(1);
    let none = sys.get(&format!("/api/analytics/most-expensive-task?period=day&date={empty}"), &admin).await;
    assert_eq!(none.status, StatusCode::NOT_FOUND);
    assert!(none.detail().contains("No task was completed"));
    sys.finish().await;
}

#[tokio::test]
async fn only_admins_see_analytics_and_bad_periods_are_refused() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    for role in [Role::Worker, Role::Manager, Role::Accountant] {
        let popug = sys.popug(role).await;
        for path in ["/api/analytics/summary", "/api/analytics/most-expensive-task", "/api/analytics/days"] {
            let reply = sys.get(path, &popug.token).await;
            assert_eq!(reply.status, StatusCode::FORBIDDEN, "{role} {path}");
        }
    }
    assert_eq!(
        sys.call(Method::GET, "/api/analytics/summary", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for (query, expected) in [
        ("from=2026-11-21&to=2026-11-01", "must not be after"),
        ("period=week&from=2026-11-01", "either `period`"),
        ("period=year", "query string"),
        ("from=2000-01-01&to=2026-01-01", "at most"),
    ] {
        let reply = sys.get(&format!("/api/analytics/days?{query}"), &admin).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(reply.detail().contains(expected), "{query}: {}", reply.detail());
    }
    sys.finish().await;
}

#[tokio::test]
async fn the_dashboards_follow_the_real_system_end_to_end() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    let other = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&worker, &manager, &other]).await;
    let mut completed = Vec::new();
    for n in 0..6 {
        let task = sys
            .post(
                "/api/tasks",
                &manager.token,
                json!({ "title": format!("Real task {n}"), "jira_id": format!("POP-{n}") }),
            )
            .await
            .expect(StatusCode::CREATED);
        let assignee = if task["assignee_id"] == worker.id.to_string() { &worker } else { &other };
        if n % 2 == 0 {
            let id = task["task_id"].as_str().unwrap();
            sys.post(&format!("/api/tasks/{id}/complete"), &assignee.token, json!({}))
                .await
                .expect(StatusCode::OK);
            completed.push(id.to_owned());
        }
    }
    sys.settled().await;
    // Accounting's events go through the ACCOUNTING stream once more before analytics has them.
    sys.settled().await;

    let accounting = sys.get("/api/accounting/dashboard", &admin).await.expect(StatusCode::OK);
    let accounting_today = accounting.as_array().unwrap().last().unwrap().clone();
    let summary = sys.get("/api/analytics/summary", &admin).await.expect(StatusCode::OK);
    assert_eq!(summary["management_earnings"], accounting_today["management_earnings"]);
    let accounts = sys.get("/api/accounting/accounts", &admin).await.expect(StatusCode::OK);
    let negative =
        accounts["items"].as_array().unwrap().iter().filter(|a| a["balance"].as_i64().unwrap() < 0).count();
    assert_eq!(summary["negative_balance_accounts"], negative);
    let top = sys.get("/api/analytics/most-expensive-task", &admin).await.expect(StatusCode::OK);
    assert!(completed.contains(&top["task_id"].as_str().unwrap().to_owned()));
    assert!(top["title"].as_str().unwrap().starts_with("Real task "), "{top}");
    assert!(top["jira_id"].as_str().unwrap().starts_with("POP-"));
    assert!(top["completed_at"].is_string());
    let rewards: Vec<i64> =
        sqlx::query_scalar("SELECT amount FROM transactions WHERE kind = 'completion_reward'")
            .fetch_all(&sys.system.accounting.backbone.pool)
            .await
            .unwrap();
    assert_eq!(top["completion_reward"].as_i64(), rewards.iter().max().copied());
    let _ = read;
    let _ = Utc::now();
    sys.finish().await;
}

#[tokio::test]
async fn the_most_expensive_task_of_a_day_is_one_completed_that_day_whatever_day_its_reward_is_billed_to() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let task = sys
        .post("/api/tasks", &manager.token, json!({ "title": "Late work" }))
        .await
        .expect(StatusCode::CREATED);
    let id = task["task_id"].as_str().unwrap();
    sys.settled().await;
    let today = Utc::now().date_naive();
    let tomorrow = today + Duration::days(1);
    // Today is closed already: the reward of a task completed now is billed to tomorrow.
    sys.post(&format!("/api/accounting/billing-days/{today}/close"), &admin, json!({}))
        .await
        .expect(StatusCode::OK);
    sys.post(&format!("/api/tasks/{id}/complete"), &worker.token, json!({})).await.expect(StatusCode::OK);
    sys.settled().await;
    sys.settled().await;
    let billed: NaiveDate =
        sqlx::query_scalar("SELECT billing_date FROM transactions WHERE kind = 'completion_reward'")
            .fetch_one(&sys.system.accounting.backbone.pool)
            .await
            .unwrap();
    assert_eq!(billed, tomorrow);

    let top = sys.get(&format!("/api/analytics/most-expensive-task?period=day&date={today}"), &admin).await;
    assert_eq!(top.expect(StatusCode::OK)["task_id"], id, "completed today");
    let next =
        sys.get(&format!("/api/analytics/most-expensive-task?period=day&date={tomorrow}"), &admin).await;
    assert_eq!(next.status, StatusCode::NOT_FOUND, "nothing was completed tomorrow");
    let days = sys
        .get(&format!("/api/analytics/days?from={today}&to={tomorrow}"), &admin)
        .await
        .expect(StatusCode::OK);
    assert_eq!(days[0]["most_expensive_task"]["task_id"], id);
    assert!(days[1]["most_expensive_task"].is_null());
    sys.finish().await;
}
