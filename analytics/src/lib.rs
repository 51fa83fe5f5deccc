//! aTES analytics: the admins' dashboards, built only from events.
//!
//! It keeps its own replica of the accounts (for token checks) and a projection of the task
//! additions and completions and accounting's transactions into per-day tables: management
//! earnings, how many popugs are negative, and the most expensive completed task. The projection
//! can be rebuilt from the streams into fresh tables and swapped in while the dashboards keep
//! answering (`ates replay analytics`).

pub mod config;
mod consumers;
pub mod dashboards;
pub mod domain;
mod error;
mod http;
pub mod queries;
mod state;

use std::sync::Arc;

use ates_accounts_replica::ReplicaFreshness;
use ates_messaging::permissions::{Bus, Subscription};
use ates_messaging::projection::{self, Live};
use ates_messaging::{Backbone, Consumer, streams};
use ates_schemas::Event;
use ates_schemas::events::{TaskAddedV2, TaskCompletedV1, TransactionAppliedV1};
use ates_tokens::Authenticator;
use ates_web::Readiness;
use axum::Router;
use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::dashboards::Dashboards;

pub use config::AnalyticsConfig;
pub use error::{Error, Result};

/// Analytics' schema.
pub const SCHEMA: &str = "analytics";

/// What it does on the bus; its NATS user's permissions follow from this.
pub const BUS: Bus = Bus {
    user: "analytics",
    produces: None,
    consumes: &[Subscription::all(streams::ACCOUNTS, consumers::accounts::NAME), SOURCES[0], SOURCES[1]],
};

/// Analytics' own tables.
pub static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/analytics");

/// Analytics's OpenAPI document, as its HTTP routes describe themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::router().split_for_parts().1
}

/// The streams the dashboards are built from, with the name of each live consumer and the
/// events it asks for: only those that change what the dashboards show. Assignments (half of
/// `TASKS`) and `task_priced`, `billing_day_closed` and `payout_sent` are not sent to analytics,
/// so they cost it no delivery, acknowledgement, validation or record of having been applied.
/// (When an older instance's consumer is narrowed to these, what it had been given and not
/// acknowledged still comes once more, and is ignored as before. While old and new instances
/// run side by side, each connection sets the filter its own instance has; the consumer keeps
/// its place either way.)
pub const SOURCES: [Subscription; 2] = [
    Subscription {
        stream: streams::TASKS,
        consumer: consumers::tasks::NAME,
        events: &[TaskAddedV2::NAME, TaskCompletedV1::NAME],
    },
    Subscription {
        stream: streams::ACCOUNTING,
        consumer: consumers::accounting::NAME,
        events: &[TransactionAppliedV1::NAME],
    },
];

/// Analytics, connected and migrated.
pub struct AnalyticsService {
    /// The read model, as configured.
    pub dashboards: Dashboards,
    /// The API routes with their state.
    pub router: Router,
    /// The OpenAPI description of those routes.
    pub openapi: utoipa::openapi::OpenApi,
    /// The database and NATS connections.
    pub backbone: Backbone,
}

impl AnalyticsService {
    /// Connects, migrates and prepares the current generation of the dashboards.
    pub async fn build(config: &AnalyticsConfig) -> anyhow::Result<Self> {
        let migrations = [&ates_accounts_replica::MIGRATIONS, &projection::MIGRATIONS, &MIGRATIONS];
        let backbone = Backbone::start(&config.backbone, &BUS, SCHEMA, &migrations)
            .await
            .map_err(anyhow::Error::from_boxed)?;
        projection::prepare::<Dashboards>(&backbone.pool).await?;
        let authenticator = Authenticator::new(Arc::new(config.tokens.verifier()))
            .with_freshness(ReplicaFreshness::new(backbone.pool.clone()));
        let state = state::AppState {
            pool: backbone.pool.clone(),
            backbone: backbone.clone(),
            authenticator,
            zone: config.calendar.timezone,
        };
        let (router, openapi) = http::router().split_for_parts();
        let dashboards = Dashboards { zone: config.calendar.timezone };
        Ok(AnalyticsService { dashboards, router: router.with_state(state), openapi, backbone })
    }

    /// The live consumers of the dashboards, one per source stream.
    pub fn dashboard_consumers(&self) -> Vec<Consumer<Live<Dashboards>>> {
        let handler = Arc::new(Live(Arc::new(self.dashboards)));
        SOURCES.iter().map(|source| self.backbone.consumer(source, handler.clone())).collect()
    }

    /// Starts the background work: the accounts replica and the dashboards' consumers.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        workers.spawn(consumers::accounts::consumer(&self.backbone).run(shutdown.child_token()));
        for consumer in self.dashboard_consumers() {
            workers.spawn(consumer.run(shutdown.child_token()));
        }
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
