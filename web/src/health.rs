//! Liveness, readiness and metrics endpoints.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use sqlx::PgPool;

use crate::Problem;

/// What a service needs to be ready: its database and NATS.
#[derive(Clone)]
pub struct Readiness {
    /// The service's database.
    pub pool: PgPool,
    /// The NATS connection.
    pub nats: async_nats::Client,
}

impl Readiness {
    async fn check(&self) -> Result<(), Problem> {
        if sqlx::query("SELECT 1").execute(&self.pool).await.is_err() {
            return Err(Problem::unavailable("The database is unreachable."));
        }
        if self.nats.connection_state() != async_nats::connection::State::Connected {
            return Err(Problem::unavailable("NATS is unreachable."));
        }
        Ok(())
    }
}

/// `GET /healthz` (the process is up), `GET /readyz` (database and NATS reachable) and
/// `GET /metrics` (Prometheus text format).
pub fn ops_routes(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(readiness): State<Readiness>| async move {
                readiness.check().await.map(|()| (StatusCode::OK, "ready"))
            }),
        )
        .route(
            "/metrics",
            get(|| async {
                let handle = crate::prometheus();
                handle.run_upkeep();
                handle.render()
            }),
        )
        .with_state(readiness)
}
