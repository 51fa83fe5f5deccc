use ates_tests::Role;
use std::collections::HashMap;

use ates_schemas::DomainEvent;
use ates_schemas::events::TransactionKind;
use ates_tests::{TestSystem, outbox_events};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// Waits until accounting has posted `count` transactions.
async fn posted(sys: &TestSystem, count: i64) {
    ates_testkit::eventually(&format!("{count} transactions"), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions")
            .fetch_one(&sys.system.accounting.backbone.pool)
            .await
            .ok()?;
        (n >= count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn each_role_sees_what_it_may_and_nothing_else() {
    let sys = TestSystem::start().await;
    let (worker, other, accountant, manager) = (
        sys.popug(Role::Worker).await,
        sys.popug(Role::Worker).await,
        sys.popug(Role::Accountant).await,
        sys.popug(Role::Manager).await,
    );
    sys.known_to_task_tracker(&[&worker, &other, &accountant, &manager]).await;
    let admin = sys.admin_token().await;
    let own = format!("/api/accounting/accounts/{}", worker.id);
    let others = format!("/api/accounting/accounts/{}", other.id);

    let rules: [(&str, &str, StatusCode); 13] = [
        (&worker.token, "/api/accounting/me", StatusCode::OK),
        (&worker.token, &own, StatusCode::OK),
        (&worker.token, &others, StatusCode::FORBIDDEN),
        (&worker.token, "/api/accounting/accounts", StatusCode::FORBIDDEN),
        (&worker.token, "/api/accounting/dashboard", StatusCode::FORBIDDEN),
        (&manager.token, "/api/accounting/accounts", StatusCode::FORBIDDEN),
        (&manager.token, "/api/accounting/dashboard", StatusCode::FORBIDDEN),
        (&accountant.token, &others, StatusCode::OK),
        (&accountant.token, "/api/accounting/accounts", StatusCode::OK),
        (&accountant.token, "/api/accounting/dashboard", StatusCode::OK),
        (&accountant.token, "/api/accounting/invariants", StatusCode::FORBIDDEN),
        (&admin, "/api/accounting/dashboard", StatusCode::OK),
        (&admin, "/api/accounting/invariants", StatusCode::OK),
    ];
    for (token, path, expected) in rules {
        let reply = sys.get(path, token).await;
        assert_eq!(reply.status, expected, "{path}: {reply:?}");
    }
    assert_eq!(
        sys.call(Method::GET, "/api/accounting/me", None, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    for (path, expected) in [
        ("/api/accounting/me?date=yesterday", "query string"),
        ("/api/accounting/dashboard?from=2026-11-21&to=2026-11-01", "must not be after"),
        ("/api/accounting/dashboard?from=2024-01-01&to=2026-01-01", "at most 366 days"),
    ] {
        let reply = sys.get(path, &admin).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(reply.detail().contains(expected), "{path}: {}", reply.detail());
    }
    sys.finish().await;
}

#[tokio::test]
async fn fees_and_rewards_reach_balances_and_the_dashboard_through_the_whole_system() {
    let sys = TestSystem::start().await;
    let (worker, accountant, manager) =
        (sys.popug(Role::Worker).await, sys.popug(Role::Accountant).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &accountant, &manager]).await;
    let tokens: HashMap<Uuid, &str> =
        [(worker.id, worker.token.as_str()), (accountant.id, accountant.token.as_str())].into();
    let mut completions: usize = 0;
    for n in 0..8 {
        let task = sys
            .post("/api/tasks", &manager.token, json!({ "title": format!("Task {n}") }))
            .await
            .expect(StatusCode::CREATED);
        if n % 2 == 0 {
            let assignee: Uuid = task["assignee_id"].as_str().unwrap().parse().unwrap();
            sys.post(
                &format!("/api/tasks/{}/complete", task["task_id"].as_str().unwrap()),
                tokens[&assignee],
                json!({}),
            )
            .await
            .expect(StatusCode::OK);
            completions += 1;
        }
    }
    sys.post("/api/tasks/shuffle", &manager.token, json!({})).await.expect(StatusCode::OK);
    posted(&sys, i64::try_from(8 + completions + 4).unwrap()).await;

    let events = outbox_events(&sys.system.accounting.backbone.pool).await;
    let applied: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::TransactionApplied(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(applied.len(), 8 + completions + 4, "one event per transaction");
    let mut running: HashMap<Uuid, i64> = HashMap::new();
    for t in &applied {
        let balance = running.entry(t.account_id).or_default();
        *balance += t.amount;
        assert_eq!(t.balance_after, *balance, "balance_after is the running sum per account");
        match t.kind {
            TransactionKind::AssignFee => assert!((-2000..=-1000).contains(&t.amount)),
            TransactionKind::CompletionReward => assert!((2000..=4000).contains(&t.amount)),
            TransactionKind::Payout => panic!("no payout without a close"),
        }
    }
    for popug in [&worker, &accountant] {
        let me = sys.get("/api/accounting/me", &popug.token).await.expect(StatusCode::OK);
        assert_eq!(me["balance"].as_i64().unwrap(), running.get(&popug.id).copied().unwrap_or(0));
    }

    let admin = sys.admin_token().await;
    let dashboard = sys.get("/api/accounting/dashboard", &admin).await.expect(StatusCode::OK);
    let today = dashboard.as_array().unwrap().last().unwrap().clone();
    let fees_and_rewards: i64 = applied.iter().map(|t| t.amount).sum();
    assert_eq!(today["management_earnings"].as_i64().unwrap(), -fees_and_rewards, "{today}");
    assert_eq!(
        today["management_earnings"].as_i64(),
        Some(today["assign_fees"].as_i64().unwrap() - today["completion_rewards"].as_i64().unwrap())
    );
    assert_eq!(dashboard.as_array().unwrap().len(), 30, "the last 30 days by default");
    let accounts: Value = sys.get("/api/accounting/accounts", &admin).await.expect(StatusCode::OK);
    let listed: HashMap<String, i64> = accounts["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["account_id"].as_str().unwrap().to_owned(), a["balance"].as_i64().unwrap()))
        .collect();
    assert_eq!(listed[&worker.id.to_string()], running.get(&worker.id).copied().unwrap_or(0));
    assert!(!listed.contains_key(&Uuid::nil().to_string()), "the company account is not a popug");
    let report = sys.get("/api/accounting/invariants", &admin).await.expect(StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
    sys.finish().await;
}
