//! What every service connects to at start-up: its database schema and NATS.

use std::time::Duration;

use async_nats::jetstream;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::consumer::{ConsumerSpec, DeliverySettings, Handler};
use crate::nats::NatsUser;
use crate::permissions::{Bus, Subscription};
use crate::streams::{self, StreamSettings};
use crate::{db, nats};

/// The NATS server when `NATS_URL` is not set.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Where the database and NATS are, and how the streams are set up; read from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneConfig {
    /// The PostgreSQL database; each service uses its own schema in it. Required by the service
    /// binaries; `ates dev` starts its own server without it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,
    #[command(flatten)]
    pub nats: NatsConnection,
    #[command(flatten)]
    pub streams: StreamSettings,
    #[command(flatten)]
    pub delivery: DeliverySettings,
    /// How long published events stay in a service's outbox, for `ates republish`.
    #[arg(long, env = "ATES_OUTBOX_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub outbox_retention: Duration,
    /// How often each producing service checks that its stream still has every event it
    /// published within the last minutes, and re-publishes from the outbox what it lost.
    #[arg(long, env = "ATES_OUTBOX_AUDIT_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub outbox_audit_interval: Duration,
    /// How often each service reads where its work waits (outbox backlog, consumer lag, parked
    /// messages, stream sizes) into its gauges.
    #[arg(long, env = "ATES_GAUGES_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub gauges_interval: Duration,
}

impl BackboneConfig {
    /// The database URL, or why there is none.
    pub fn database_url(&self) -> Result<&str, crate::BoxError> {
        self.database_url.as_ref().map(ExposeSecret::expose_secret).ok_or_else(|| {
            "DATABASE_URL is not set: give the PostgreSQL database, e.g. postgres://ates@db/ates".into()
        })
    }

    /// The same settings with these connections.
    pub fn connected_to(mut self, database_url: &str, nats_url: &str) -> Self {
        self.database_url = Some(database_url.into());
        self.nats.nats_url = Some(nats_url.to_owned());
        self
    }
}

/// Where NATS is and who to be there; read from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsConnection {
    /// The NATS servers, comma-separated (nats://127.0.0.1:4222 if unset; `ates dev` starts its
    /// own without it).
    #[arg(long, env = "NATS_URL")]
    pub nats_url: Option<String>,
    /// The NATS user, when the server requires one (each service, and the operator, has its own).
    #[arg(long, env = "NATS_USER")]
    pub nats_user: Option<String>,
    /// That user's password.
    #[arg(long, env = "NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<SecretString>,
}

impl NatsConnection {
    /// The server list.
    pub fn url(&self) -> &str {
        self.nats_url.as_deref().unwrap_or(DEFAULT_NATS_URL)
    }

    /// The user, if one is set.
    pub fn user(&self) -> Option<NatsUser> {
        let name = self.nats_user.clone()?;
        Some(NatsUser { name, password: self.nats_password.clone().unwrap_or_else(|| "".into()) })
    }

    /// Connects as `client_name`.
    pub async fn connect(&self, client_name: &str) -> Result<async_nats::Client, crate::BoxError> {
        nats::connect(self.url(), client_name, self.user().as_ref()).await
    }
}

/// A service's connections: a pool on its own schema and a JetStream context.
#[derive(Clone)]
pub struct Backbone {
    /// The service's schema.
    pub schema: &'static str,
    /// Connections whose search path is the service's schema.
    pub pool: PgPool,
    /// The NATS connection.
    pub nats: async_nats::Client,
    /// JetStream on that connection.
    pub js: jetstream::Context,
    /// The settings it was made from.
    pub config: BackboneConfig,
    /// What it does on the bus.
    pub bus: Bus,
}

/// How far before its last audit the auditor checks publishes again: longer than nats-server's
/// default fsync interval (two minutes), so what was acknowledged but only in memory at one
/// audit is checked again once it should be on disk.
const AUDIT_MARGIN: Duration = Duration::from_secs(5 * 60);

impl Backbone {
    /// Connects, applies the messaging migrations and then `migrations` to `schema`, and makes
    /// sure the streams `bus` provisions exist.
    pub async fn start(
        config: &BackboneConfig,
        bus: &Bus,
        schema: &'static str,
        migrations: &[&Migrator],
    ) -> Result<Self, crate::BoxError> {
        let pool = db::connect(config.database_url()?, schema, 16)?;
        db::migrate(&pool, schema, migrations.iter().flat_map(|m| m.iter())).await?;
        tokio::spawn(crate::outbox::indexes::build_in_background(pool.clone(), schema));
        let nats = config.nats.connect(&format!("ates-{schema}")).await?;
        let js = nats::jetstream(nats.clone(), Duration::from_secs(10));
        streams::ensure(&js, &config.streams, &bus.provisions()).await?;
        Ok(Backbone { schema, pool, nats, js, config: config.clone(), bus: *bus })
    }

    /// The outbox relay of this service's schema.
    pub fn relay(&self) -> crate::Relay {
        let mut settings = crate::RelaySettings::keeping(self.config.outbox_retention);
        settings.audit = self.bus.produces.map(|stream| crate::outbox::AuditSettings {
            stream,
            streams: self.config.streams.clone(),
            interval: self.config.outbox_audit_interval,
            margin: AUDIT_MARGIN,
            reader: self.bus.audit_reader(),
        });
        crate::Relay::new(self.pool.clone(), self.js.clone(), self.schema, settings)
    }

    /// The durable consumer of `subscription`, applying `handler` to this service's schema with
    /// the configured delivery settings.
    pub fn consumer<H: Handler>(
        &self,
        subscription: &Subscription,
        handler: std::sync::Arc<H>,
    ) -> crate::Consumer<H> {
        let mut spec = ConsumerSpec::new(subscription.consumer, subscription.stream, &[])
            .with_delivery(self.config.delivery);
        spec.subjects = subscription.filter_subjects();
        crate::Consumer::new(self.js.clone(), self.pool.clone(), spec, handler)
    }
}
