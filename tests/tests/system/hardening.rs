//! Hostile and careless input: every bad request gets a 4xx problem+json with a sentence, and
//! every answer carries the security headers.

use ates_tests::{Role, TestSystem, read};
use reqwest::{Method, StatusCode, header};
use serde_json::json;

#[tokio::test]
async fn control_and_bidi_characters_are_refused_naming_the_field_and_nothing_is_stored() {
    let sys = TestSystem::start().await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    for (body, field) in [
        (json!({ "title": "Feed\u{0}the birds" }), "title"),
        (json!({ "title": "Feed the birds", "description": "nul \u{0} here" }), "description"),
        (json!({ "title": "Feed the birds", "description": "bell \u{7}" }), "description"),
        (json!({ "title": "evil\u{202E}txt.exe" }), "title"),
        (json!({ "title": "tab\there" }), "title"),
    ] {
        let reply = sys.post("/api/tasks", &manager.token, body.clone()).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {:?}", reply.body);
        assert!(reply.detail().contains(field), "{body}: {}", reply.detail());
    }
    let fine =
        json!({ "title": "Feed the birds", "description": "one\n\ttwo\r\nthree \u{202E} is text here" });
    sys.post("/api/tasks", &manager.token, fine).await.expect(StatusCode::CREATED);
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks")
        .fetch_one(&sys.system.task_tracker.backbone.pool)
        .await
        .unwrap();
    assert_eq!(tasks, 1, "only the good task is stored");

    let admin = sys.admin_token().await;
    for (email, name, field) in [
        ("popug\u{0}@ates.test", "Popug", "email"),
        ("not an address", "Popug", "email"),
        ("popug@localhost", "Popug", "email"),
        (&*format!("{}@ates.test", "a".repeat(250)), "Popug", "email"),
        ("popug@ates.test", "Pop\u{0}ug", "full_name"),
        ("popug@ates.test", "Pop\u{2066}ug", "full_name"),
    ] {
        let body =
            json!({ "email": email, "full_name": name, "password": "popug-password", "role": "worker" });
        let reply = sys.call(Method::POST, "/api/accounts", Some(&admin), Some(body)).await;
        assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{email:?} {name:?}: {:?}", reply.body);
        assert!(reply.detail().contains(field), "{}", reply.detail());
    }
    let patch = sys.patch_account(&admin, worker.id, json!({ "full_name": "Pop\u{0}" })).await;
    assert_eq!(patch.status, StatusCode::UNPROCESSABLE_ENTITY);
    let login = sys.login(&format!("{}@ates.test", "a".repeat(300)), "whatever").await;
    assert_eq!(login.status, StatusCode::UNPROCESSABLE_ENTITY, "an absurd email never reaches the limiter");
    sys.finish().await;
}

#[tokio::test]
async fn every_error_is_problem_json_with_a_sentence() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    // `read` asserts the problem+json content type of every error.
    let unknown = sys.call(Method::GET, "/api/nothing-here", Some(&admin), None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(unknown.detail().contains("/api/nothing-here"), "{}", unknown.detail());
    let deep = sys.call(Method::GET, "/no/such/page", None, None).await;
    assert_eq!(deep.status, StatusCode::NOT_FOUND);

    let response =
        sys.http.delete(format!("{}/api/tasks", sys.url)).bearer_auth(&admin).send().await.unwrap();
    let allow = response.headers().get(header::ALLOW).cloned();
    let wrong_method = read(response).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(allow.is_some(), "the Allow header stays");
    assert!(wrong_method.detail().contains("Allow"), "{}", wrong_method.detail());

    let bad_path = sys.call(Method::PATCH, "/api/accounts/not-a-uuid", Some(&admin), Some(json!({}))).await;
    assert_eq!(bad_path.status, StatusCode::BAD_REQUEST);
    let bad_query = sys.call(Method::GET, "/api/tasks?limit=many", Some(&admin), None).await;
    assert_eq!(bad_query.status, StatusCode::BAD_REQUEST);

    let big = json!({ "title": "x", "description": "d".repeat(100 * 1024) });
    let too_large = sys.call(Method::POST, "/api/tasks", Some(&admin), Some(big)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(too_large.detail().contains("larger than"), "{}", too_large.detail());

    let plain = sys
        .http
        .post(format!("{}/api/tasks", sys.url))
        .bearer_auth(&admin)
        .header(header::CONTENT_TYPE, "text/plain")
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(read(plain).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    sys.finish().await;
}

#[tokio::test]
async fn the_ui_and_the_apis_send_the_security_headers_and_the_jwks_may_be_cached_briefly() {
    let sys = TestSystem::start().await;
    for path in ["/", "/app.js", "/api/tasks", "/readyz", "/.well-known/jwks.json"] {
        let response = sys.http.get(format!("{}{path}", sys.url)).send().await.unwrap();
        let headers = response.headers();
        let policy = headers.get(header::CONTENT_SECURITY_POLICY).map(|v| v.to_str().unwrap().to_owned());
        let policy = policy.unwrap_or_else(|| panic!("{path} has a Content-Security-Policy"));
        assert!(policy.contains("frame-ancestors 'none'"), "{path}: {policy}");
        assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
        assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff", "{path}");
        assert_eq!(headers.get(header::REFERRER_POLICY).unwrap(), "no-referrer", "{path}");
    }
    let jwks = sys.http.get(format!("{}/.well-known/jwks.json", sys.url)).send().await.unwrap();
    let cache = jwks.headers().get(header::CACHE_CONTROL).unwrap().to_str().unwrap().to_owned();
    assert!(cache.contains("max-age="), "{cache}");
    sys.finish().await;
}

#[tokio::test]
async fn absurd_dates_and_ranges_are_refused_with_a_sentence() {
    let sys = TestSystem::start().await;
    let admin = sys.admin_token().await;
    for path in [
        "/api/analytics/days?from=2020-01-01&to=2030-01-01",
        "/api/analytics/most-expensive-task?from=0001-01-01&to=9999-12-31",
        "/api/analytics/summary?date=262143-12-31",
        "/api/analytics/days?period=week&date=262143-12-31",
        "/api/analytics/days?period=month&date=-262143-01-01",
        "/api/analytics/days?from=2026-02-01&to=2026-01-01",
        "/api/accounting/me?date=262143-12-31",
        "/api/accounting/dashboard?from=0001-01-01&to=9999-12-31",
        "/api/analytics/summary?date=2026-02-30",
        "/api/analytics/summary?date=yesterday",
    ] {
        let reply = sys.get(path, &admin).await;
        assert!(reply.status.is_client_error(), "{path}: {} {:?}", reply.status, reply.body);
        assert!(reply.detail().len() > 20, "{path}: a sentence, not {:?}", reply.detail());
    }
    let close = sys.post("/api/accounting/billing-days/262143-12-31/close", &admin, json!({})).await;
    assert!(close.status.is_client_error(), "{:?}", close.body);
    let capped = sys.get("/api/analytics/days?from=2020-01-01&to=2030-01-01", &admin).await;
    assert!(capped.detail().contains("366"), "the cap is named: {}", capped.detail());
    sys.finish().await;
}
