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
    /// Copies of each stream in a NATS cluster.
    #[arg(long, env = "ATES_STREAM_REPLICAS", default_value_t = 1)]
    pub stream_replicas: usize,
    /// How long JetStream drops a repeated `Nats-Msg-Id`.
    #[arg(long, env = "ATES_STREAM_DUPLICATE_WINDOW", default_value = "2m", value_parser = humantime::parse_duration)]
    pub stream_duplicate_window: Duration,
    /// Drop events older than this; 0 keeps them forever (replay needs the history).
    #[arg(long, env = "ATES_STREAM_MAX_AGE", default_value = "0s", value_parser = humantime::parse_duration)]
    pub stream_max_age: Duration,
    /// Size cap per stream in bytes; -1 for none.
    #[arg(long, env = "ATES_STREAM_MAX_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    pub stream_max_bytes: i64,
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
            stream_replicas: 1,
            stream_duplicate_window: Duration::from_secs(120),
            stream_max_age: Duration::ZERO,
            stream_max_bytes: -1,
            outbox_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }

    /// The stream settings part.
    pub fn streams(&self) -> StreamSettings {
        StreamSettings {
            replicas: self.stream_replicas,
            duplicate_window: self.stream_duplicate_window,
            max_age: self.stream_max_age,
            max_bytes: self.stream_max_bytes,
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
        streams::ensure(&js, &config.streams()).await?;
        Ok(Backbone { schema, pool, nats, js, config: config.clone() })
    }

    /// The outbox relay of this service's schema.
    pub fn relay(&self) -> crate::Relay {
        let settings = crate::RelaySettings { retention: self.config.outbox_retention, ..Default::default() };
        crate::Relay::new(self.pool.clone(), self.js.clone(), self.schema, settings)
    }
}
