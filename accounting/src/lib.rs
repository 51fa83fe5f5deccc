//! aTES accounting: prices tasks, keeps the ledger, and shows balances and earnings.
//!
//! It consumes `accounts.*` (a replica with emails, for payout mail) and `tasks.*`: every task
//! is priced once, every assignment debits the assignee the fee, every completion credits the
//! reward. Transactions are double-entry against the company account, derive their ids from
//! their cause, and are announced as `accounting.*` events through the outbox.

pub mod closing;
pub mod config;
pub mod consumers;
pub mod domain;
mod error;
mod http;
pub mod invariants;
pub mod jobs;
pub mod ledger;
pub mod mail;
mod state;
pub mod statements;

use std::sync::Arc;
use std::time::Duration;

use ates_accounts_replica::ReplicaFreshness;
use ates_messaging::permissions::{Bus, Subscription};
use ates_messaging::{Backbone, Consumer, streams};
use ates_tokens::Authenticator;
use ates_web::Readiness;
use axum::Router;
use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{AccountingConfig, AccountingSettings, CloseSchedule, MailConfig};
pub use error::{Error, Result};

/// Accounting's schema.
pub const SCHEMA: &str = "accounting";

/// What it does on the bus; its NATS user's permissions follow from this.
pub const BUS: Bus = Bus {
    user: "accounting",
    produces: Some(streams::ACCOUNTING),
    consumes: &[
        Subscription::all(streams::ACCOUNTS, consumers::accounts::NAME),
        consumers::tasks::LEDGER,
        consumers::tasks::REWARDS,
    ],
};

/// Accounting's own tables.
pub static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/accounting");

/// Accounting's OpenAPI document, as its HTTP routes describe themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::router().split_for_parts().1
}

/// Accounting, connected and migrated.
pub struct AccountingService {
    /// The API routes with their state.
    pub router: Router,
    /// The OpenAPI description of those routes.
    pub openapi: utoipa::openapi::OpenApi,
    /// The database and NATS connections.
    pub backbone: Backbone,
    mailer: mail::Mailer,
    config: AccountingConfig,
}

impl AccountingService {
    /// Connects and migrates.
    pub async fn build(config: &AccountingConfig) -> anyhow::Result<Self> {
        let migrations = [&ates_accounts_replica::MIGRATIONS, &MIGRATIONS];
        let backbone = Backbone::start(&config.backbone, &BUS, SCHEMA, &migrations)
            .await
            .map_err(anyhow::Error::from_boxed)?;
        let authenticator = Authenticator::new(Arc::new(config.tokens.verifier()))
            .with_freshness(ReplicaFreshness::new(backbone.pool.clone()));
        let mailer = mail::Mailer::new(backbone.pool.clone(), &config.settings.mail)?;
        let state = state::AppState {
            pool: backbone.pool.clone(),
            backbone: backbone.clone(),
            authenticator,
            zone: config.calendar.timezone,
            outbox_retention: config.backbone.outbox_retention,
        };
        let (router, openapi) = http::router().split_for_parts();
        Ok(AccountingService {
            router: router.with_state(state),
            openapi,
            backbone,
            mailer,
            config: config.clone(),
        })
    }

    /// The consumers of `tasks.*` that keep the ledger: fees, and rewards.
    pub fn task_consumers(&self) -> [Consumer<consumers::tasks::TaskEvents>; 2] {
        consumers::tasks::consumers(&self.backbone, self.config.calendar.timezone)
    }

    /// Starts the background work: the outbox relay, the accounts replica, the ledger, the
    /// daily close and the payout mailer.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        workers.spawn(self.backbone.relay().run(shutdown.child_token()));
        workers.spawn(consumers::accounts::consumer(&self.backbone).run(shutdown.child_token()));
        for consumer in self.task_consumers() {
            workers.spawn(consumer.run(shutdown.child_token()));
        }
        workers.spawn(self.daily_close().run(shutdown.child_token()));
        workers.spawn(self.mailer.clone().run(shutdown.child_token()));
        workers.spawn(self.backbone.clone().report_waiting(shutdown.child_token()));
        workers.spawn(jobs::report_last_closed_day(
            self.backbone.pool.clone(),
            self.config.calendar.timezone,
            self.backbone.config.gauges_interval,
            shutdown.child_token(),
        ));
    }

    /// The daily close, as configured.
    pub fn daily_close(&self) -> jobs::DailyClose {
        jobs::DailyClose {
            pool: self.backbone.pool.clone(),
            js: self.backbone.js.clone(),
            zone: self.config.calendar.timezone,
            schedule: self.config.settings.close_schedule.clone(),
            tasks: &consumers::tasks::SUBSCRIPTIONS,
            backlog_wait: self.config.settings.close_backlog_wait,
            retry_initial: Duration::from_secs(1),
        }
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
