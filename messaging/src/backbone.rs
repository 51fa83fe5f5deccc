//! What every service connects to at start-up: its database schema and NATS.

use std::time::Duration;

use async_nats::jetstream;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

use crate::streams::{self, StreamSettings};
use crate::{db, nats};

/// Where the database and NATS are, and how the streams are set up; read from the environment.
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneConfig {
    /// The PostgreSQL database; each service uses its own schema in it.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    #[command(flatten)]
    pub streams: StreamSettings,
    /// How long published events stay in a service's outbox, for `ates republish`.
    #[arg(long, env = "ATES_OUTBOX_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub outbox_retention: Duration,
}

impl BackboneConfig {
    /// Settings for a database URL and NATS URL, with defaults for the rest.
    pub fn new(database_url: &str, nats_url: &str) -> Self {
        BackboneConfig {
            database_url: database_url.to_owned(),
            nats_url: nats_url.to_owned(),
            streams: StreamSettings::default(),
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
        }
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
}

impl Backbone {
    /// Connects, applies the messaging migrations and then `migrations` to `schema`, and makes
    /// sure the streams exist.
    pub async fn start(
        config: &BackboneConfig,
        schema: &'static str,
        migrations: &[&Migrator],
    ) -> Result<Self, crate::BoxError> {
        let pool = db::connect(&config.database_url, schema, 16)?;
        db::migrate(&pool, schema, migrations.iter().flat_map(|m| m.iter())).await?;
        let nats = nats::connect(&config.nats_url, &format!("ates-{schema}")).await?;
        let js = nats::jetstream(nats.clone(), Duration::from_secs(10));
        streams::ensure(&js, &config.streams).await?;
        Ok(Backbone { schema, pool, nats, js, config: config.clone() })
    }

    /// The outbox relay of this service's schema.
    pub fn relay(&self) -> crate::Relay {
        let settings = crate::RelaySettings { retention: self.config.outbox_retention, ..Default::default() };
        crate::Relay::new(self.pool.clone(), self.js.clone(), self.schema, settings)
    }
}
