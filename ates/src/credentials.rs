//! The identities of one deployment: each service's NATS user (allowed only what its `BUS`
//! declares) and PostgreSQL role (allowed only its own schema), the operator's NATS user and the
//! database superuser, with generated passwords kept in a file only its owner can read.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use ates_devservers::NatsUserConfig;
use ates_messaging::db::Identifier;
use ates_messaging::nats::NatsUser;
use ates_messaging::permissions::Bus;
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sqlx::Connection;

/// A service as the bus and the database know it.
#[derive(Debug, Clone, Copy)]
pub struct Service {
    /// What it does on the bus (its NATS user and permissions).
    pub bus: Bus,
    /// The one schema it owns.
    pub schema: &'static str,
}

pub const AUTH: Service = Service { bus: ates_auth::BUS, schema: ates_auth::SCHEMA };
pub const TASK_TRACKER: Service = Service { bus: ates_task_tracker::BUS, schema: ates_task_tracker::SCHEMA };
pub const ACCOUNTING: Service = Service { bus: ates_accounting::BUS, schema: ates_accounting::SCHEMA };
pub const ANALYTICS: Service = Service { bus: ates_analytics::BUS, schema: ates_analytics::SCHEMA };

/// Every service, in start-up order.
pub const SERVICES: [Service; 4] = [AUTH, TASK_TRACKER, ACCOUNTING, ANALYTICS];

/// The NATS user of the command line (`ates replay`, `dlq`, `republish`, `streams`): it may do
/// anything.
pub const OPERATOR: &str = "operator";

/// A password per NATS user and per PostgreSQL role.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// NATS user → password: the services' and the operator's.
    nats: BTreeMap<String, String>,
    /// Service schema → the password of its role.
    postgres: BTreeMap<String, String>,
    /// The roles are `<role_prefix>_<schema>`.
    role_prefix: String,
    /// The password of the `postgres` superuser of a server `ates dev` runs.
    superuser: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let roles: Vec<String> = SERVICES.iter().map(|s| self.role(s.schema)).collect();
        f.debug_struct("Credentials")
            .field("nats_users", &self.nats.keys().collect::<Vec<_>>())
            .field("postgres_roles", &roles)
            .finish()
    }
}

impl Credentials {
    /// New random passwords for every service, the operator and the superuser; the services'
    /// roles are named `<role_prefix>_<schema>`.
    pub fn generate(role_prefix: &str) -> Self {
        Identifier::new(role_prefix).expect("a role prefix is an identifier");
        let users = SERVICES.iter().map(|s| s.bus.user).chain([OPERATOR]);
        Credentials {
            nats: users.map(|user| (user.to_owned(), password())).collect(),
            postgres: SERVICES.iter().map(|s| (s.schema.to_owned(), password())).collect(),
            role_prefix: role_prefix.to_owned(),
            superuser: password(),
        }
    }

    /// The credentials kept at `file`, created (readable by its owner only) on first use.
    pub fn load_or_create(file: &Path) -> anyhow::Result<Self> {
        if let Ok(text) = std::fs::read_to_string(file) {
            return serde_json::from_str(&text).with_context(|| {
                format!("{} is not a credentials file: remove it to start over", file.display())
            });
        }
        let credentials = Self::generate("ates");
        ates_devservers::write_secret(file, &serde_json::to_string_pretty(&credentials)?)?;
        Ok(credentials)
    }

    /// The NATS user `user` connects as.
    pub fn nats_user(&self, user: &str) -> NatsUser {
        let password = self.nats.get(user).unwrap_or_else(|| panic!("no credentials for {user}"));
        NatsUser { name: user.to_owned(), password: password.as_str().into() }
    }

    /// How to reach the NATS servers at `url` as `user`.
    pub fn nats_connection(&self, url: &str, user: &str) -> ates_messaging::NatsConnection {
        let user = self.nats_user(user);
        ates_messaging::NatsConnection {
            nats_url: Some(url.to_owned()),
            nats_user: Some(user.name),
            nats_password: Some(user.password),
        }
    }

    /// The users a nats-server must accept: each service with exactly its permissions, and the
    /// operator with all.
    pub fn nats_server_users(&self) -> Vec<NatsUserConfig> {
        let password = |user: &str| self.nats_user(user).password.expose_secret().to_owned();
        let mut users: Vec<NatsUserConfig> = SERVICES
            .iter()
            .map(|service| {
                let permissions = service.bus.permissions();
                NatsUserConfig {
                    user: service.bus.user.to_owned(),
                    password: password(service.bus.user),
                    publish: Some(permissions.publish),
                    subscribe: Some(permissions.subscribe),
                }
            })
            .collect();
        users.push(NatsUserConfig {
            user: OPERATOR.to_owned(),
            password: password(OPERATOR),
            publish: None,
            subscribe: None,
        });
        users
    }

    /// The superuser's password.
    pub fn superuser_password(&self) -> &str {
        &self.superuser
    }

    /// The role of the service owning `schema`.
    pub fn role(&self, schema: &str) -> String {
        format!("{}_{schema}", self.role_prefix)
    }

    /// `url` (any user) turned into the URL of the role of the service owning `schema`.
    pub fn database_url(&self, url: &str, schema: &str) -> anyhow::Result<String> {
        let password =
            self.postgres.get(schema).with_context(|| format!("no role for the schema {schema}"))?;
        let mut url = url::Url::parse(url).context("DATABASE_URL is not a URL")?;
        url.set_username(&self.role(schema)).map_err(|()| anyhow::anyhow!("DATABASE_URL has no host"))?;
        url.set_password(Some(password)).map_err(|()| anyhow::anyhow!("DATABASE_URL has no host"))?;
        Ok(url.into())
    }

    /// Makes each service's role, as the superuser at `admin_url`, the owner of its schema and of
    /// nothing else: it may connect to the database and migrate and use its own schema, and
    /// cannot read another's. Safe to run again; takes over schemas an earlier run made as
    /// the superuser, and safe to run beside another provisioning of the same server.
    pub async fn provision_roles(&self, admin_url: &str) -> anyhow::Result<()> {
        let mut connection =
            sqlx::PgConnection::connect(admin_url).await.context("connect as the superuser")?;
        let mut admin = connection.begin().await?;
        // The grants below rewrite rows of pg_database, which every database of the server
        // shares (`postgres`' and `template1`'s too): two provisionings at once (two systems on one
        // server starting together) would fail with "tuple concurrently updated". Under this lock
        // they take turns; connections, CREATE and DROP DATABASE and autovacuum do not wait for
        // it (a manual VACUUM of pg_database does).
        sqlx::query("LOCK TABLE pg_catalog.pg_database IN SHARE UPDATE EXCLUSIVE MODE")
            .execute(&mut *admin)
            .await
            .context("wait for any other provisioning of this server")?;
        let database: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&mut *admin).await?;
        let database = Identifier::new(database).map_err(anyhow::Error::msg)?;
        for service in SERVICES {
            let role = self.role(service.schema);
            Identifier::new(role.as_str()).map_err(anyhow::Error::msg)?;
            let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
                .bind(&role)
                .fetch_one(&mut *admin)
                .await?;
            let verb = if exists { "ALTER" } else { "CREATE" };
            // format() quotes the name and the password on the server: nothing is spliced here.
            let statement: String =
                sqlx::query_scalar("SELECT format('%s ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', $1::text, $2::text, $3::text)")
                    .bind(verb)
                    .bind(&role)
                    .bind(&self.postgres[service.schema])
                    .fetch_one(&mut *admin)
                    .await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement)).execute(&mut *admin).await?;
            let take_over = TAKE_OVER
                .replace("{role}", &role)
                .replace("{schema}", service.schema)
                .replace("{database}", &database.to_string());
            sqlx::raw_sql(sqlx::AssertSqlSafe(take_over)).execute(&mut *admin).await?;
        }
        database.execute(&mut admin, "REVOKE ALL ON DATABASE {} FROM PUBLIC").await?;
        // Nor the server's own databases: a service role reaches its database and nothing else.
        for other in ["postgres", "template1"] {
            Identifier::new(other)
                .map_err(anyhow::Error::msg)?
                .execute(&mut admin, "REVOKE CONNECT ON DATABASE {} FROM PUBLIC")
                .await?;
        }
        admin.commit().await?;
        connection.close().await?;
        Ok(())
    }
}

/// Gives `{role}` connect on `{database}` and ownership of `{schema}` and everything in it:
/// tables (partitions included), views, sequences not owned by a column (those follow their
/// table), functions and types (identifiers checked by the caller).
const TAKE_OVER: &str = r#"
GRANT CONNECT ON DATABASE "{database}" TO "{role}";
CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{role}";
ALTER SCHEMA "{schema}" OWNER TO "{role}";
DO $$
DECLARE item record;
BEGIN
    FOR item IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = '"{schema}"'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner <> '"{role}"'::regrole
          AND NOT (c.relkind = 'S' AND EXISTS (
              SELECT FROM pg_depend d
              WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE format('ALTER TABLE "{schema}".%I OWNER TO "{role}"', item.relname);
    END LOOP;
    FOR item IN
        SELECT p.oid::regprocedure AS routine FROM pg_proc p
        WHERE p.pronamespace = '"{schema}"'::regnamespace AND p.proowner <> '"{role}"'::regrole
    LOOP
        EXECUTE format('ALTER ROUTINE %s OWNER TO "{role}"', item.routine);
    END LOOP;
    FOR item IN
        SELECT t.typname FROM pg_type t
        WHERE t.typnamespace = '"{schema}"'::regnamespace AND t.typtype IN ('e', 'd')
          AND t.typowner <> '"{role}"'::regrole
    LOOP
        EXECUTE format('ALTER TYPE "{schema}".%I OWNER TO "{role}"', item.typname);
    END LOOP;
END $$;
"#;

fn password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}
