//! Running one service as its own process.

use std::net::SocketAddr;

use axum::Router;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{Readiness, asyncapi_route, layers, openapi_route, ops_routes};

/// A service's routes with health, metrics, its OpenAPI and AsyncAPI documents and the standard
/// layers.
pub fn app(
    routes: Router,
    openapi: utoipa::openapi::OpenApi,
    asyncapi: &serde_json::Value,
    readiness: Readiness,
) -> Router {
    layers(routes.merge(ops_routes(readiness)).merge(openapi_route(openapi)).merge(asyncapi_route(asyncapi)))
}

/// Serves `app` on `address` and runs the workers `start` spawns, until SIGTERM or Ctrl-C;
/// then stops taking requests, lets the ones in flight finish and waits for the workers.
pub async fn run_standalone(
    address: SocketAddr,
    app: Router,
    start: impl FnOnce(&CancellationToken, &mut JoinSet<()>),
) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let mut workers = JoinSet::new();
    start(&shutdown, &mut workers);
    let listener = tokio::net::TcpListener::bind(address).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::shutdown_signal().await;
        stop.cancel();
    });
    crate::serve(listener, app, shutdown.clone()).await?;
    shutdown.cancel();
    workers.join_all().await;
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`), and exports the spans of `service`
/// when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see [`crate::telemetry`]). Keep what it returns
/// until the process ends.
pub fn init_logging(service: &str) -> anyhow::Result<crate::telemetry::Telemetry> {
    crate::telemetry::init(service, "info")
}
