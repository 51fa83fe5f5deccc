use reqwest::{Method, StatusCode};
use serde_json::json;

use ates_tests::{ADMIN_EMAIL, ADMIN_PASSWORD, TestSystem, logs};

#[tokio::test]
async fn passwords_and_tokens_never_appear_in_logs() {
    let sys = TestSystem::start().await;
    let (access, refresh) = sys.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin = sys.admin_token().await;
    let secret_password = "very-secret-password-42";
    let body = json!({ "email": "logged@ates.test", "full_name": "L", "password": secret_password, "role": "worker" });
    assert_eq!(
        sys.call(Method::POST, "/api/accounts", Some(&admin), Some(body)).await.status,
        StatusCode::CREATED
    );
    sys.login("logged@ates.test", "wrong-password-77").await;
    let refreshed =
        sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": refresh }))).await;
    sys.call(Method::POST, "/api/auth/refresh", None, Some(json!({ "refresh_token": refresh }))).await; // reuse
    sys.call(Method::GET, "/api/auth/me", Some(&access), None).await;
    sys.call(Method::GET, "/api/auth/me", Some("Bearer garbage"), None).await;

    let logs = logs();
    assert!(logs.contains("/api/auth/login"), "the requests were logged: {} bytes", logs.len());
    for secret in [
        ADMIN_PASSWORD,
        secret_password,
        "wrong-password-77",
        access.as_str(),
        admin.as_str(),
        refresh.as_str(),
        refreshed.body["refresh_token"].as_str().unwrap(),
        refreshed.body["access_token"].as_str().unwrap(),
    ] {
        assert!(!logs.contains(secret), "a secret leaked into the logs");
        let signature = secret.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a token signature leaked into the logs");
    }
    sys.finish().await;
}
