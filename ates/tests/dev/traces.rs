//! OpenTelemetry: with an OTLP endpoint set, one trace follows a request from the HTTP call
//! through the outbox, NATS and every consumer it reaches, and on to what those consumers
//! publish because of it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};

use crate::Dev;

/// An OTLP/HTTP collector that keeps every span it is sent (JSON encoding).
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Value>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let receive = |State(spans): State<Arc<Mutex<Vec<Value>>>>, body: Bytes| async move {
            let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
            let mut kept = spans.lock().unwrap();
            for resource in export["resourceSpans"].as_array().into_iter().flatten() {
                let service = service_name(&resource["resource"]);
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        let mut span = span.clone();
                        span["service"] = json!(service);
                        kept.push(span);
                    }
                }
            }
            "{}"
        };
        let app = axum::Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Collector { url, spans }
    }

    /// The spans of trace `trace_id` so far.
    fn trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.spans.lock().unwrap();
        let text = |span: &Value, key: &str| span[key].as_str().unwrap_or_default().to_lowercase();
        spans
            .iter()
            .filter(|span| text(span, "traceId") == trace_id)
            .map(|span| Span {
                service: text(span, "service"),
                name: text(span, "name"),
                id: text(span, "spanId"),
                parent: text(span, "parentSpanId"),
                consumer: attribute(span, "consumer"),
            })
            .collect()
    }
}

/// What the test reads of a span.
#[derive(Debug)]
struct Span {
    service: String,
    name: String,
    id: String,
    parent: String,
    consumer: Option<String>,
}

fn attribute(span: &Value, key: &str) -> Option<String> {
    let attributes = span["attributes"].as_array()?;
    let found = attributes.iter().find(|a| a["key"] == key)?;
    found["value"]["stringValue"].as_str().map(str::to_owned)
}

fn service_name(resource: &Value) -> String {
    attribute(resource, "service.name").unwrap_or_default()
}

#[tokio::test]
async fn with_an_otlp_endpoint_one_trace_follows_a_request_through_every_service_it_reaches() {
    let collector = Collector::start().await;
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let dev = Dev::start_with(&[], &env).await;
    let token = dev.admin_token().await;
    let worker = json!({
        "email": "traced@example.com", "full_name": "Traced Popug", "password": "popug-trace-1", "role": "worker"
    });
    let created =
        dev.http.post(format!("{}/api/accounts", dev.base)).bearer_auth(&token).json(&worker).send();
    assert_eq!(created.await.unwrap().status(), reqwest::StatusCode::CREATED);

    // The task tracker assigns a task only once it knows a worker: retry until it does.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let task = json!({ "title": "Follow the trace" });
    ates_testkit::eventually("the task to be created", || async {
        let response = dev
            .http
            .post(format!("{}/api/tasks", dev.base))
            .bearer_auth(&token)
            .header("traceparent", &traceparent)
            .header("Idempotency-Key", "traced-task")
            .json(&task)
            .send()
            .await
            .unwrap();
        (response.status() == reqwest::StatusCode::CREATED).then_some(())
    })
    .await;

    // The request, accounting and analytics applying its task events, and analytics applying
    // what accounting published because of them (the fee): one trace.
    let wanted = ["accounting-tasks", "analytics-tasks", "analytics-accounting"];
    let trace = ates_testkit::eventually("the whole trace at the collector", || async {
        let trace = collector.trace(trace_id);
        let request = trace.iter().any(|s| s.name == "request");
        let applied = wanted
            .iter()
            .all(|c| trace.iter().any(|s| s.name == "apply" && s.consumer.as_deref() == Some(*c)));
        (request && applied).then_some(trace)
    })
    .await;
    assert!(trace.iter().all(|s| s.service == "ates"), "ates dev names itself: {trace:?}");
    // A chain, not just a shared id: the request continues the caller's span, and every other
    // span continues one of the trace (the fee's apply in analytics continues accounting's).
    for span in &trace {
        if span.name == "request" {
            assert_eq!(span.parent, "00f067aa0ba902b7", "the caller's span: {trace:?}");
        } else {
            assert!(trace.iter().any(|s| s.id == span.parent), "{span:?} continues a span of {trace:?}");
        }
    }
    let parent_of = |consumer: &str| {
        let span = trace.iter().find(|s| s.consumer.as_deref() == Some(consumer)).unwrap();
        trace.iter().find(|s| s.id == span.parent).unwrap()
    };
    assert_eq!(parent_of("analytics-accounting").consumer.as_deref(), Some("accounting-tasks"), "{trace:?}");
    eprintln!("one trace: {trace:?}");
}
