//! aTES auth: the only service that knows passwords.
//!
//! It keeps the accounts, signs short-lived Ed25519 access tokens and rotating refresh tokens,
//! publishes its public keys as a JWKS for the other services to verify tokens locally, and
//! announces every account change as `accounts.*` events through its outbox.

mod accounts;
mod bootstrap;
pub mod config;
mod domain;
mod error;
mod http;
mod keys;
mod limiter;
mod sessions;
mod state;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ates_messaging::permissions::Bus;
use ates_messaging::{Backbone, streams};
use ates_tokens::{Authenticator, Keyring, Verifier};
use ates_web::Readiness;
use axum::Router;
use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::{AuthConfig, AuthSettings};
pub use error::{Error, Result};

/// Auth's schema.
pub const SCHEMA: &str = "auth";

/// What it does on the bus; its NATS user's permissions follow from this.
pub const BUS: Bus = Bus { user: "auth", produces: Some(streams::ACCOUNTS), consumes: &[] };

/// Auth's own tables.
pub static MIGRATIONS: Migrator = sqlx::migrate!("../migrations/auth");

/// Auth's OpenAPI document, as its HTTP routes describe themselves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    http::router().split_for_parts().1
}

/// The auth service, connected and migrated.
pub struct AuthService {
    /// The API routes and the JWKS, with their state.
    pub router: Router,
    /// The OpenAPI description of those routes.
    pub openapi: utoipa::openapi::OpenApi,
    /// The database and NATS connections.
    pub backbone: Backbone,
}

impl AuthService {
    /// Connects, migrates, makes sure an admin and a signing key exist.
    pub async fn build(config: &AuthConfig) -> anyhow::Result<Self> {
        let backbone = Backbone::start(&config.backbone, &BUS, SCHEMA, &[&MIGRATIONS])
            .await
            .map_err(anyhow::Error::from_boxed)?;
        let pool = backbone.pool.clone();
        let settings = &config.settings;
        let admin_password = settings.admin_password.as_ref().map(ExposeSecret::expose_secret);
        bootstrap::first_admin(&pool, settings.admin_email.as_deref(), admin_password).await?;
        let keys = keys::SigningKeys::load_or_create(pool.clone(), settings.access_ttl).await?;
        let jwks = keys.source();
        let verifier = Verifier::new(
            Keyring::new(jwks.clone(), Duration::from_secs(1), config.tokens.jwks_ttl),
            &config.tokens.settings(),
        );
        let authenticator = Authenticator::new(Arc::new(verifier))
            .with_freshness(accounts::CurrentAccounts { pool: pool.clone() });
        let sessions = sessions::Sessions {
            pool: pool.clone(),
            keys,
            issuer: config.tokens.issuer.clone(),
            audience: config.tokens.audience.clone(),
            access_ttl: settings.access_ttl,
            refresh_ttl: chrono::Duration::from_std(settings.refresh_ttl)
                .ok()
                .filter(|ttl| chrono::Utc::now().checked_add_signed(*ttl).is_some())
                .context("ATES_REFRESH_TOKEN_TTL is too long")?,
        };
        let state = state::AppState {
            pool,
            backbone: backbone.clone(),
            sessions: Arc::new(sessions),
            jwks,
            authenticator,
            limiter: Arc::new(limiter::LoginLimiter::new(limiter::Limits {
                per_account_and_address: settings.login_attempts_per_account,
                per_address: settings.login_attempts_per_address,
                per_account: settings.login_failures_per_account,
            })),
            trusted_proxies: settings.trusted_proxies.clone(),
        };
        let (router, openapi) = http::router().split_for_parts();
        Ok(AuthService { router: router.with_state(state), openapi, backbone })
    }

    /// Starts the background work: the outbox relay.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        workers.spawn(self.backbone.relay().run(shutdown.child_token()));
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
