use reqwest::{Method, StatusCode};

use ates_tests::TestSystem;

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let sys = TestSystem::start().await;
    sys.login("nobody@ates.test", "whatever-password").await;

    assert_eq!(sys.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
    assert_eq!(sys.call(Method::GET, "/readyz", None, None).await.status, StatusCode::OK);
    let metrics = sys.http.get(format!("{}/metrics", sys.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("ates_auth_logins_total"), "{metrics}");
    let openapi = sys.call(Method::GET, "/api/openapi.json", None, None).await;
    let paths = openapi.body["paths"].as_object().unwrap();
    for path in [
        "/api/auth/login",
        "/api/auth/refresh",
        "/api/auth/logout",
        "/api/auth/me",
        "/api/accounts",
        "/api/accounts/{account_id}",
        "/.well-known/jwks.json",
    ] {
        assert!(paths.contains_key(path), "{path} is documented");
    }
    assert!(openapi.body["components"]["securitySchemes"]["bearer"].is_object());
    let mut errors = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for (status, response) in operation["responses"].as_object().unwrap() {
                if status.parse::<u16>().is_ok_and(|code| code >= 400) {
                    errors += 1;
                    let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ProblemBody", "{method} {path} {status}");
                }
            }
        }
    }
    assert!(errors > 30, "every error response is documented as a problem: {errors}");
    assert!(openapi.body["components"]["schemas"]["ProblemBody"].is_object());
    sys.finish().await;
}

#[tokio::test]
async fn readiness_fails_while_nats_is_down() {
    let mut sys = TestSystem::start().await;

    sys.nats.stop().await;

    let reply = ates_testkit::eventually("readyz to notice", || async {
        let reply = sys.call(Method::GET, "/readyz", None, None).await;
        (reply.status == StatusCode::SERVICE_UNAVAILABLE).then_some(reply)
    })
    .await;
    assert!(reply.detail().contains("NATS"), "{reply:?}");
    sys.nats.restart().await;
    ates_testkit::eventually("readyz to recover", || async {
        (sys.call(Method::GET, "/readyz", None, None).await.status == StatusCode::OK).then_some(())
    })
    .await;
    sys.finish().await;
}
