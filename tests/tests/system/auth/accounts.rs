use ates_tests::Role;
use std::collections::HashSet;

use async_nats::jetstream::consumer::pull;
use ates_schemas::{DomainEvent, ReceivedEvent, Registry};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::json;

use ates_tests::TestSystem;

#[tokio::test]
async fn admin_endpoints_refuse_workers_and_anonymous_callers() {
    let sys = TestSystem::start().await;
    let (id, email) = sys.new_account(Role::Worker).await;
    let (worker, _) = sys.tokens(&email, ates_tests::PASSWORD).await;

    let calls = [
        (Method::GET, "/api/accounts".to_owned(), None),
        (
            Method::POST,
            "/api/accounts".to_owned(),
            Some(
                json!({ "email": "x@ates.test", "full_name": "X", "password": "password1", "role": "worker" }),
            ),
        ),
        (Method::PATCH, format!("/api/accounts/{id}"), Some(json!({ "role": "admin" }))),
        (Method::POST, "/api/auth/keys/rotate".to_owned(), None),
    ];
    for (method, path, body) in calls {
        let as_worker = sys.call(method.clone(), &path, Some(&worker), body.clone()).await;
        assert_eq!(as_worker.status, StatusCode::FORBIDDEN, "{method} {path}: {as_worker:?}");
        assert!(as_worker.detail().contains("needs the admin role"), "{as_worker:?}");
        let anonymous = sys.call(method.clone(), &path, None, body).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    let me = sys.call(Method::GET, "/api/auth/me", Some(&worker), None).await;
    assert_eq!(me.body["role"], "worker");
    sys.finish().await;
}

#[tokio::test]
async fn an_email_is_taken_whatever_its_case() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    assert_eq!(sys.create_account(&admin, "Popug@ates.test", Role::Worker).await.status, StatusCode::CREATED);

    let duplicate = sys.create_account(&admin, "popug@ATES.test", Role::Accountant).await;

    assert_eq!(duplicate.status, StatusCode::CONFLICT, "{duplicate:?}");
    assert!(duplicate.detail().contains("already exists"));
    sys.finish().await;
}

#[tokio::test]
async fn bad_input_gets_a_problem_that_says_what_is_wrong() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let create = |body| sys.call(Method::POST, "/api/accounts", Some(&admin), Some(body));

    let unknown_role = create(
        json!({ "email": "a@ates.test", "full_name": "A", "password": "password1", "role": "overlord" }),
    )
    .await;
    assert_eq!(unknown_role.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(unknown_role.detail().contains("overlord"), "{unknown_role:?}");
    let bad_email = create(
        json!({ "email": "not-an-email", "full_name": "A", "password": "password1", "role": "worker" }),
    )
    .await;
    assert_eq!(bad_email.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad_email.detail().contains("not an email address"));
    let short_password =
        create(json!({ "email": "b@ates.test", "full_name": "B", "password": "short", "role": "worker" }))
            .await;
    assert_eq!(short_password.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(short_password.detail().contains("at least 8"));
    let missing = create(json!({ "email": "c@ates.test" })).await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);

    let malformed = sys
        .http
        .post(format!("{}/api/accounts", sys.url))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let huge = sys
        .http
        .post(format!("{}/api/auth/login", sys.url))
        .header("content-type", "application/json")
        .body(format!("{{\"email\": \"{}\", \"password\": \"x\"}}", "a".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(huge.headers()["content-type"], "application/problem+json");
    sys.finish().await;
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_or_deactivated() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let me = sys.call(Method::GET, "/api/auth/me", Some(&admin), None).await;
    let admin_id: uuid::Uuid = me.body["account_id"].as_str().unwrap().parse().unwrap();

    for change in [json!({ "role": "manager" }), json!({ "active": false })] {
        let refused = sys.patch_account(&admin, admin_id, change).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{refused:?}");
        assert!(refused.detail().contains("last active admin"));
    }

    let (second_id, second_email) = sys.new_account(Role::Admin).await;
    let demoted = sys.patch_account(&admin, admin_id, json!({ "role": "manager" })).await;
    assert_eq!(demoted.status, StatusCode::OK, "with a second admin, the first may step down");
    let (second, _) = sys.tokens(&second_email, ates_tests::PASSWORD).await;
    let refused = sys.patch_account(&second, second_id, json!({ "active": false })).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "now the second one is the last");
    sys.finish().await;
}

#[tokio::test]
async fn an_unknown_account_is_not_found() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;

    let reply = sys.patch_account(&admin, uuid::Uuid::new_v4(), json!({ "full_name": "X" })).await;

    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    sys.finish().await;
}

#[tokio::test]
async fn account_events_are_published_once_each_and_valid() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    let (id, _) = sys.new_account(Role::Worker).await;
    sys.patch_account(&admin, id, json!({ "role": "accountant", "full_name": "Renamed" })).await;
    sys.patch_account(&admin, id, json!({ "active": false })).await;
    sys.patch_account(&admin, id, json!({ "active": false })).await; // no change, no event

    let js = ates_messaging::nats::jetstream(
        sys.operator().connect("test").await.unwrap(),
        std::time::Duration::from_secs(5),
    );
    let events = ates_testkit::eventually("five account events", || async {
        let stream = js.get_stream("ACCOUNTS").await.ok()?;
        let consumer = stream.create_consumer(pull::OrderedConfig::default()).await.ok()?;
        if consumer.cached_info().num_pending < 5 {
            return None;
        }
        let messages: Vec<_> = consumer.messages().await.ok()?.take(5).collect().await;
        Some(messages.into_iter().map(|m| m.unwrap().payload.to_vec()).collect::<Vec<_>>())
    })
    .await;

    assert_eq!(
        js.get_stream("ACCOUNTS").await.unwrap().info().await.unwrap().state.messages,
        5,
        "nothing twice"
    );
    let received: Vec<ReceivedEvent> = events
        .iter()
        .map(|bytes| {
            Registry::global().validate(bytes).expect("valid against the committed schema");
            ReceivedEvent::decode(bytes).unwrap()
        })
        .collect();
    let ids: HashSet<_> = received.iter().map(|e| e.meta.event_id).collect();
    assert_eq!(ids.len(), 5);
    let names: Vec<&str> = received.iter().map(|e| e.meta.event_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "accounts.created",
            "accounts.created",
            "accounts.updated",
            "accounts.role_changed",
            "accounts.updated"
        ]
    );
    match &received[3].event {
        DomainEvent::AccountRoleChanged(change) => {
            assert_eq!((change.old_role.as_str(), change.new_role.as_str()), ("worker", "accountant"))
        }
        other => panic!("expected a role change, got {other:?}"),
    }
    match &received[4].event {
        DomainEvent::AccountUpdated(state) => assert!(!state.active && state.full_name == "Renamed"),
        other => panic!("expected the deactivation, got {other:?}"),
    }
    sys.finish().await;
}
