//! `GET /api/asyncapi.json`: the whole AsyncAPI document from the system, and each service on
//! its own serving only the part of the bus it sends and receives.

use std::collections::BTreeSet;

use ates_tests::TestSystem;
use axum::Router;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The AsyncAPI document `app` serves, checked to be a 200 `application/json` AsyncAPI 3.0 one.
async fn asyncapi_of(http: &reqwest::Client, base: &str) -> Value {
    let response = http.get(format!("{base}/api/asyncapi.json")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    doc
}

/// Serves `app` on a free port until `shutdown`; returns its base URL.
async fn serve(app: Router, shutdown: &CancellationToken) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(ates_web::serve(listener, app, shutdown.clone()));
    base
}

/// The services that have an operation in `doc`.
fn services(doc: &Value) -> BTreeSet<String> {
    let operations = doc["operations"].as_object().unwrap().values();
    operations.map(|op| op["x-ates-service"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn the_system_serves_the_whole_asyncapi_document_and_each_service_its_own_part() {
    let sys = TestSystem::start().await;

    let whole = asyncapi_of(&sys.http, &sys.url).await;
    assert_eq!(whole, ates_schemas::asyncapi::document());
    assert_eq!(
        services(&whole),
        ["accounting", "analytics", "auth", "task-tracker"].map(String::from).into()
    );
    assert!(whole["channels"]["tasks.added.v2"].is_object());

    let shutdown = CancellationToken::new();
    let parts = [
        (ates_auth::BUS.user, sys.system.auth.app()),
        (ates_task_tracker::BUS.user, sys.system.task_tracker.app()),
        (ates_accounting::BUS.user, sys.system.accounting.app()),
        (ates_analytics::BUS.user, sys.system.analytics.app()),
    ];
    for (service, app) in parts {
        let part = asyncapi_of(&sys.http, &serve(app, &shutdown).await).await;
        assert_eq!(services(&part), BTreeSet::from([service.to_owned()]), "{service}");
        assert_eq!(part, ates_schemas::asyncapi::of_service(service), "{service}");
    }
    shutdown.cancel();
    sys.finish().await;
}
