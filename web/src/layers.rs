//! The layers around every service's routes: body limit, problem+json for every error,
//! security headers, request metrics, logging.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;
use tower_http::LatencyUnit;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::Problem;
use crate::correlation::CorrelationId;
use crate::problem::InternalCause;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the UI and the APIs may load and who may frame them: only this origin's own files, no
/// inline script or style, no framing.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Wraps `router` with the body limit, problem+json for every error (unknown routes and
/// methods included), the security headers, per-route request metrics, the log line of every
/// server error with its cause, the correlation id ([`CorrelationId`]) and request tracing (an
/// info line per response with method, path, status, latency and correlation id; never bodies
/// or headers).
pub fn layers(router: Router) -> Router {
    layers_with_limit(router, max_in_flight())
}

/// How many requests a service handles at once by default; see [`layers_with_limit`].
pub const MAX_IN_FLIGHT: usize = 512;

/// `ATES_HTTP_MAX_IN_FLIGHT`, or [`MAX_IN_FLIGHT`]. Read when a service builds its routes, at
/// start-up, which a value that is not a positive number stops, naming the variable.
fn max_in_flight() -> usize {
    let Ok(value) = std::env::var("ATES_HTTP_MAX_IN_FLIGHT") else { return MAX_IN_FLIGHT };
    match value.parse::<usize>() {
        Ok(limit) if (1..=Semaphore::MAX_PERMITS).contains(&limit) => limit,
        _ => panic!("ATES_HTTP_MAX_IN_FLIGHT must be a positive number of requests, not {value:?}"),
    }
}

/// [`layers`], handling at most `limit` requests at once: one more is answered at once with
/// 503 and `Retry-After: 1` instead of queueing, so an overloaded service stays fast for what it
/// takes and its memory stays bounded. Health, readiness and metrics are never refused.
pub fn layers_with_limit(router: Router, limit: usize) -> Router {
    // Install the recorder now: counters bumped before it exists would be lost.
    crate::prometheus();
    let slots = Arc::new(Semaphore::new(limit));
    let header = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .fallback(unknown_route)
        .layer(middleware::from_fn(problem_json))
        .layer(middleware::from_fn_with_state(slots, shed))
        .layer(middleware::from_fn(observe))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(header(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .layer(header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(header(header::REFERRER_POLICY, "no-referrer"))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(LatencyUnit::Millis)),
        )
        .layer(middleware::from_fn(crate::correlation::correlate))
}

/// The span of a request: its method, path and correlation id, on every line logged while it
/// is handled (so one grep of the id finds them).
fn request_span(request: &Request) -> tracing::Span {
    let correlation = request
        .extensions()
        .get::<CorrelationId>()
        .copied()
        .unwrap_or_else(|| CorrelationId::from_header(None));
    let span = tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), correlation_id = %correlation);
    if let Some(parent) = request.headers().get(crate::telemetry::TRACEPARENT).and_then(|v| v.to_str().ok()) {
        crate::telemetry::continue_trace(&span, parent);
    }
    span
}

async fn unknown_route(request: Request) -> Problem {
    Problem::not_found(format!(
        "There is nothing at {} {}: check the path against the API description at /openapi.json.",
        request.method(),
        request.uri().path()
    ))
}

/// Rewrites an error axum or a layer answered by itself (405 for a method a route does not
/// take, 413 for a body over the limit, a text/plain rejection) as problem+json with a
/// sentence, keeping its headers (`Allow`, `Retry-After`, …).
async fn problem_json(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let original = String::from_utf8_lossy(&text).trim().to_owned();
    let detail = match status {
        StatusCode::NOT_FOUND => format!(
            "There is nothing at {method} {path}: check the path against the API description at /openapi.json."
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!("{path} does not take {method}; the Allow header lists the methods it does.")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!("The request body is larger than the limit of {} KiB.", MAX_BODY_BYTES / 1024)
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            "Send the body as JSON, with the header Content-Type: application/json.".to_owned()
        }
        _ if !original.is_empty() && original.len() < 1000 => original,
        _ => format!("The request failed: {}.", status.canonical_reason().unwrap_or("error")),
    };
    let mut rewritten = Problem::new(status, "request", detail).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().append(name.clone(), value.clone());
        }
    }
    rewritten
}

/// Handles `request` if a slot is free, refuses it with 503 otherwise.
async fn shed(State(slots): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let Ok(_slot) = slots.try_acquire() else {
        metrics::counter!("http_requests_shed_total").increment(1);
        return Problem::unavailable(
            "This service is handling as many requests as it can at once; retry in a second.",
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, %path, "request failed: {cause}");
    }
    metrics::counter!("http_requests_total", "method" => method.clone(), "path" => path.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "path" => path)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use tokio::sync::{Notify, mpsc};
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_request_over_the_limit_is_refused_at_once_and_health_is_always_answered() {
        let (entered, mut inside) = mpsc::unbounded_channel::<()>();
        let release = Arc::new(Notify::new());
        let slow = {
            let release = release.clone();
            get(move || async move {
                let _ = entered.send(());
                release.notified().await;
                "done"
            })
        };
        let routes = Router::new().route("/slow", slow).route("/healthz", get(|| async { "ok" }));
        let app = super::layers_with_limit(routes, 1);
        let call = |path: &str| app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap());

        let first = tokio::spawn(call("/slow"));
        inside.recv().await.unwrap();
        let refused = tokio::time::timeout(std::time::Duration::from_secs(5), call("/slow"))
            .await
            .expect("refused at once, not queued")
            .unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(refused.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(refused.into_body(), 4096).await.unwrap();
        assert!(String::from_utf8_lossy(&body).contains("retry in a second"));
        assert_eq!(call("/healthz").await.unwrap().status(), StatusCode::OK);

        release.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        // The slot is free again.
        let again = tokio::spawn(call("/slow"));
        inside.recv().await.unwrap();
        release.notify_one();
        assert_eq!(again.await.unwrap().unwrap().status(), StatusCode::OK);
    }
}
