//! Changing a password: by its owner, knowing the current one, or by an admin; either way every
//! session of the account ends, and no password or hash ever leaves auth.

use ates_tests::{PASSWORD, Role, TestSystem};
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn refresh(sys: &TestSystem, token: &str) -> StatusCode {
    sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": token }))).await.status
}

#[tokio::test]
async fn an_owner_changes_their_password_knowing_the_current_one_and_every_session_ends() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    let (access, first_session) = sys.tokens(&worker.email, PASSWORD).await;
    let (_, second_session) = sys.tokens(&worker.email, PASSWORD).await;
    let change = |current: &str, new: &str| {
        let body = json!({ "current_password": current, "new_password": new });
        sys.call(Method::POST, "/api/auth/password", Some(&access), Some(body))
    };

    let wrong = change("not-the-password", "a-new-password-1").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.detail());
    let weak = change(PASSWORD, "short").await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(weak.detail().contains("password"), "{}", weak.detail());
    let anonymous = sys
        .call(
            Method::POST,
            "/api/auth/password",
            None,
            Some(json!({ "current_password": PASSWORD, "new_password": "x".repeat(9) })),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&sys, &first_session).await, StatusCode::OK, "refused changes end nothing");

    let changed = change(PASSWORD, "a-new-password-1").await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{:?}", changed.body);
    assert_eq!(refresh(&sys, &second_session).await, StatusCode::UNAUTHORIZED, "every session has ended");
    assert_eq!(
        sys.login(&worker.email, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED,
        "the old one is gone"
    );
    sys.login(&worker.email, "a-new-password-1").await.expect(StatusCode::OK);
    sys.finish().await;
}

#[tokio::test]
async fn an_admin_sets_a_password_and_it_never_appears_in_an_event_or_a_log() {
    let sys = TestSystem::start().await;
    let worker = sys.popug(Role::Worker).await;
    let (_, session) = sys.tokens(&worker.email, PASSWORD).await;
    let secret = "admin-chosen-secret-42";

    let by_worker = sys.patch_account(&worker.token, worker.id, json!({ "password": secret })).await;
    assert_eq!(by_worker.status, StatusCode::FORBIDDEN, "only admins set others' passwords");
    let admin = sys.admin_token().await;
    let weak = sys.patch_account(&admin, worker.id, json!({ "password": "short" })).await;
    assert_eq!(weak.status, StatusCode::UNPROCESSABLE_ENTITY);
    sys.patch_account(&admin, worker.id, json!({ "password": secret })).await.expect(StatusCode::OK);

    assert_eq!(refresh(&sys, &session).await, StatusCode::UNAUTHORIZED, "the worker's sessions ended");
    assert_eq!(sys.login(&worker.email, PASSWORD).await.status, StatusCode::UNAUTHORIZED);
    sys.login(&worker.email, secret).await.expect(StatusCode::OK);

    sys.settled().await;
    let payloads: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_all(&sys.system.auth.backbone.pool)
        .await
        .unwrap();
    assert!(!payloads.is_empty());
    for payload in payloads {
        let text = String::from_utf8_lossy(&payload);
        assert!(!text.contains(secret) && !text.contains("argon2") && !text.contains("password"), "{text}");
    }
    let logs = ates_tests::logs();
    assert!(
        !logs.contains(secret) && !logs.contains(PASSWORD) && !logs.contains("$argon2"),
        "no password in a log"
    );
    sys.finish().await;
}
