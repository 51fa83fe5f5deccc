//! The identities of one deployment: each service's NATS user (allowed only what its `BUS`
//! declares) and the operator's, with generated passwords kept in a file only its owner can read.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Context;
use ates_devservers::NatsUserConfig;
use ates_messaging::nats::NatsUser;
use ates_messaging::permissions::Bus;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

/// Every service's bus declaration, in start-up order.
pub const SERVICES: [Bus; 4] =
    [ates_auth::BUS, ates_task_tracker::BUS, ates_accounting::BUS, ates_analytics::BUS];

/// The NATS user of the command line (`ates replay`, `dlq`, `republish`, `streams`): it may do
/// anything.
pub const OPERATOR: &str = "operator";

/// A password per NATS user: the services' and the operator's.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    nats: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("nats_users", &self.nats.keys().collect::<Vec<_>>()).finish()
    }
}

impl Credentials {
    /// New random passwords for every service and the operator.
    pub fn generate() -> Self {
        let users = SERVICES.iter().map(|bus| bus.user).chain([OPERATOR]);
        Credentials { nats: users.map(|user| (user.to_owned(), password())).collect() }
    }

    /// The credentials kept at `file`, created (readable by its owner only) on first use.
    pub fn load_or_create(file: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::fs::read_to_string(file) {
            return serde_json::from_str(&text)
                .with_context(|| format!("{} is not a credentials file", file.display()));
        }
        let credentials = Self::generate();
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("cannot create {}", file.display()))?;
        out.write_all(serde_json::to_string_pretty(&credentials)?.as_bytes())?;
        Ok(credentials)
    }

    /// The NATS user `user` connects as.
    pub fn nats_user(&self, user: &str) -> NatsUser {
        let password = self.nats.get(user).unwrap_or_else(|| panic!("no credentials for {user}"));
        NatsUser { name: user.to_owned(), password: password.as_str().into() }
    }

    /// The users a nats-server must accept: each service with exactly its permissions, and the
    /// operator with all.
    pub fn nats_server_users(&self) -> Vec<NatsUserConfig> {
        let mut users: Vec<NatsUserConfig> = SERVICES
            .iter()
            .map(|bus| {
                let permissions = bus.permissions();
                NatsUserConfig {
                    user: bus.user.to_owned(),
                    password: self.nats_user(bus.user).password.expose_secret().to_owned(),
                    publish: Some(permissions.publish),
                    subscribe: Some(permissions.subscribe),
                }
            })
            .collect();
        users.push(NatsUserConfig {
            user: OPERATOR.to_owned(),
            password: self.nats_user(OPERATOR).password.expose_secret().to_owned(),
            publish: None,
            subscribe: None,
        });
        users
    }
}

fn password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}
