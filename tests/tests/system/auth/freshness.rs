//! A consuming service refuses tokens made outdated by account events.

use std::sync::Arc;

use ates_accounts_replica::{AccountsReplica, ReplicaFreshness};
use ates_messaging::{Backbone, Consumer, ConsumerSpec};
use ates_tokens::{Authenticator, Caller};
use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::json;

use ates_tests::{Role, TestSystem};

/// A service with a replica of the accounts and one endpoint that says who is calling.
async fn consuming_service(sys: &TestSystem) -> String {
    let bus = ates_messaging::permissions::Bus { user: "consumer", produces: None, consumes: &[] };
    let mut config = sys.config.backbone.clone();
    config.nats = sys.operator();
    let backbone =
        Backbone::start(&config, &bus, "consumer", &[&ates_accounts_replica::MIGRATIONS]).await.unwrap();
    let spec = ConsumerSpec::new("consumer-accounts", "ACCOUNTS", &[]);
    let consumer = Consumer::new(backbone.js.clone(), backbone.pool.clone(), spec, Arc::new(AccountsReplica));
    tokio::spawn(consumer.run(tokio_util::sync::CancellationToken::new()));
    let authenticator = Authenticator::new(Arc::new(sys.config.tokens.verifier()))
        .with_freshness(ReplicaFreshness::new(backbone.pool.clone()));
    let app = Router::new()
        .route("/whoami", get(|caller: Caller| async move { caller.role.to_string() }))
        .with_state(authenticator);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn whoami(sys: &TestSystem, service: &str, token: &str) -> (StatusCode, String) {
    let response = sys.http.get(format!("{service}/whoami")).bearer_auth(token).send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn a_token_issued_before_a_role_change_or_deactivation_is_refused_once_the_event_arrives() {
    let sys = TestSystem::start().await;
    let service = consuming_service(&sys).await;
    let (id, email) = sys.new_account(Role::Worker).await;
    let (before_change, _) = sys.tokens(&email, ates_tests::PASSWORD).await;
    ates_testkit::eventually("the replica knows the worker", || async {
        (whoami(&sys, &service, &before_change).await == (StatusCode::OK, "worker".into())).then_some(())
    })
    .await;

    let admin = sys.admin_token().await;
    sys.patch_account(&admin, id, json!({ "role": "accountant" })).await;

    let (status, body) = ates_testkit::eventually("the old token refused", || async {
        let reply = whoami(&sys, &service, &before_change).await;
        (reply.0 == StatusCode::UNAUTHORIZED).then_some(reply)
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.to_lowercase().contains("token outdated"), "{body}");
    let (after_change, _) = sys.tokens(&email, ates_tests::PASSWORD).await;
    assert_eq!(whoami(&sys, &service, &after_change).await, (StatusCode::OK, "accountant".into()));

    sys.patch_account(&admin, id, json!({ "active": false })).await;
    let (status, body) = ates_testkit::eventually("the token of a deactivated account refused", || async {
        let reply = whoami(&sys, &service, &after_change).await;
        (reply.0 == StatusCode::UNAUTHORIZED).then_some(reply)
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("deactivated"), "{body}");
    sys.finish().await;
}

#[tokio::test]
async fn the_replica_reaches_the_same_state_whatever_the_order() {
    use ates_schemas::events::{AccountCreatedV1, AccountRoleChangedV1, AccountUpdatedV1, Role};
    use ates_schemas::{Envelope, ReceivedEvent};

    let db = ates_testkit::database().await;
    let pool = ates_messaging::db::connect(&db.url, "replica", 2).unwrap();
    ates_messaging::db::migrate(&pool, "replica", ates_accounts_replica::MIGRATIONS.iter()).await.unwrap();
    let id = uuid::Uuid::new_v4();
    let t0 = chrono::Utc::now();
    let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
    let state = |role: Role, active: bool| AccountUpdatedV1 {
        account_id: id,
        email: "p@ates.test".into(),
        full_name: "P".into(),
        role,
        active,
    };
    let received = |envelope: serde_json::Value| ReceivedEvent::from_validated(envelope).unwrap();
    let events = [
        received(
            serde_json::to_value(Envelope::at(
                "auth",
                at(0),
                AccountCreatedV1 {
                    account_id: id,
                    email: "p@ates.test".into(),
                    full_name: "P".into(),
                    role: Role::Worker,
                    active: true,
                },
            ))
            .unwrap(),
        ),
        received(serde_json::to_value(Envelope::at("auth", at(10), state(Role::Manager, true))).unwrap()),
        received(
            serde_json::to_value(Envelope::at(
                "auth",
                at(10),
                AccountRoleChangedV1 { account_id: id, old_role: Role::Worker, new_role: Role::Manager },
            ))
            .unwrap(),
        ),
        received(serde_json::to_value(Envelope::at("auth", at(20), state(Role::Manager, false))).unwrap()),
    ];
    let orders: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]];
    let mut outcomes = Vec::new();
    for order in orders {
        sqlx::query("TRUNCATE accounts").execute(&pool).await.unwrap();
        let mut tx = pool.begin().await.unwrap();
        for index in order {
            ates_accounts_replica::apply(&mut tx, &events[index]).await.unwrap();
        }
        tx.commit().await.unwrap();
        let row: (Option<String>, bool, Option<chrono::DateTime<chrono::Utc>>) =
            sqlx::query_as("SELECT role, active, state_time FROM accounts").fetch_one(&pool).await.unwrap();
        outcomes.push(row);
    }
    for outcome in &outcomes {
        assert_eq!(outcome.0.as_deref(), Some("manager"));
        assert!(!outcome.1, "deactivated in the end");
        assert_eq!(outcome.2.map(|t| t.timestamp_micros()), Some(at(20).timestamp_micros()));
    }
}
