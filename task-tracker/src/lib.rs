//! aTES task tracker: tasks, each assigned to a random worker or accountant.
//!
//! It keeps its own replica of the accounts (from `accounts.*`) to know who can be assigned,
//! and announces every task change as `tasks.*` events through its outbox.

pub mod config;
pub mod consumers;
pub mod domain;
mod error;
mod http;
mod idempotency;
pub mod jobs;
mod state;
pub mod tasks;

use std::sync::Arc;

use ates_accounts_replica::ReplicaFreshness;
use ates_messaging::permissions::{Bus, Subscription};
use ates_messaging::{Backbone, streams};
use ates_tokens::Authenticator;
use ates_web::Readiness;
use axum::Router;
use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::TaskTrackerConfig;
pub use error::{Error, Result};

/// The task tracker's schema.
pub const SCHEMA: &str = "task_tracker";

/// What it does on the bus; its NATS user's permissions follow from this.
pub const BUS: Bus = Bus {
    user: "task-tracker",
    produces: Some(streams::TASKS),
    consumes: &[Subscription::all(streams::ACCOUNTS, consumers::accounts::NAME)],
};

/// The task tracker's own tables.
pub static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/task_tracker");

/// The task tracker's OpenAPI document, as its HTTP routes describe themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::router().split_for_parts().1
}

/// The task tracker, connected and migrated.
pub struct TaskTrackerService {
    /// The API routes with their state.
    pub router: Router,
    /// The OpenAPI description of those routes.
    pub openapi: utoipa::openapi::OpenApi,
    /// The database and NATS connections.
    pub backbone: Backbone,
}

impl TaskTrackerService {
    /// Connects and migrates.
    pub async fn build(config: &TaskTrackerConfig) -> anyhow::Result<Self> {
        let migrations = [&ates_accounts_replica::MIGRATIONS, &MIGRATIONS];
        let backbone = Backbone::start(&config.backbone, &BUS, SCHEMA, &migrations)
            .await
            .map_err(anyhow::Error::from_boxed)?;
        let authenticator = Authenticator::new(Arc::new(config.tokens.verifier()))
            .with_freshness(ReplicaFreshness::new(backbone.pool.clone()));
        let state =
            state::AppState { pool: backbone.pool.clone(), backbone: backbone.clone(), authenticator };
        let (router, openapi) = http::router().split_for_parts();
        Ok(TaskTrackerService { router: router.with_state(state), openapi, backbone })
    }

    /// Starts the background work: the outbox relay, the accounts replica, housekeeping.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        workers.spawn(self.backbone.relay().run(shutdown.child_token()));
        workers.spawn(consumers::accounts::consumer(&self.backbone).run(shutdown.child_token()));
        workers.spawn(jobs::expire_idempotency_keys(self.backbone.pool.clone(), shutdown.child_token()));
        workers.spawn(self.backbone.clone().report_waiting(shutdown.child_token()));
    }

    /// The service on its own: its routes, health, metrics, OpenAPI and its part of the AsyncAPI
    /// document, with the standard layers.
    pub fn app(&self) -> Router {
        let asyncapi = ates_schemas::asyncapi::of_service(BUS.user);
        ates_web::app(self.router.clone(), self.openapi.clone(), &asyncapi, self.readiness())
    }

    /// What `/readyz` checks.
    pub fn readiness(&self) -> Readiness {
        Readiness { pool: self.backbone.pool.clone(), nats: self.backbone.nats.clone() }
    }
}
