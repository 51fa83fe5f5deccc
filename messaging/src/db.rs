//! PostgreSQL connections and migrations for a service that owns one schema.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// The outbox and dedupe tables every service has in its own schema.
pub static MESSAGING_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/messaging");

/// Connects a pool whose sessions use `schema` as their search path.
///
/// Lazy: the pool connects on first use, so a service starts while the database is still
/// coming up and its retry loops take over.
pub fn connect(url: &str, schema: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    assert_schema_name(schema);
    let options = PgConnectOptions::from_str(url)?
        .options([("search_path", schema)])
        .application_name(&format!("ates-{schema}"));
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options))
}

/// Creates `schema` if needed and applies the messaging migrations and then the service's own,
/// tracking them in `<schema>._sqlx_migrations`.
pub async fn migrate<'a>(
    pool: &PgPool,
    schema: &str,
    service: impl IntoIterator<Item = &'a Migration>,
) -> Result<(), MigrateError> {
    assert_schema_name(schema);
    let migrations = MESSAGING_MIGRATIONS.iter().chain(service).cloned().collect();
    let mut migrator = Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name(format!("{schema}._sqlx_migrations"));
    // A service's role owns its schema but may not create schemas: create it only when missing
    // (where the role is the superuser, as in a single-role setup).
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)")
        .bind(schema)
        .fetch_one(pool)
        .await?;
    if !exists {
        migrator.create_schema(schema.to_owned());
    }
    migrator.run(pool).await
}

fn assert_schema_name(schema: &str) {
    if let Err(e) = Identifier::new(schema) {
        panic!("a schema name must be an identifier: {e}");
    }
}

/// A lower-case SQL identifier (a schema or table name): the only text ever spliced into SQL,
/// where a name cannot be a bind parameter (DDL, per-generation partitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier(String);

impl Identifier {
    /// `name` if it is `[a-z][a-z0-9_]*` and at most 63 bytes.
    pub fn new(name: impl Into<String>) -> Result<Self, String> {
        let name = name.into();
        let valid = name.len() <= 63
            && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if valid { Ok(Identifier(name)) } else { Err(format!("{name:?} is not a lower-case SQL identifier")) }
    }

    /// Runs `sql`, in which `{}` stands for this identifier, on `conn`.
    pub async fn execute(&self, conn: &mut sqlx::PgConnection, sql: &str) -> Result<(), sqlx::Error> {
        let sql = sql.replace("{}", &self.0);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(conn).await?;
        Ok(())
    }
}

impl std::fmt::Display for Identifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A read-only transaction whose every query sees one snapshot: one moment of the database.
pub async fn begin_snapshot(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await
}

/// Whether an error means the database cannot do any work right now, as opposed to a statement
/// that failed on a healthy database: a consumer holds its messages through such an outage,
/// however long it lasts, instead of counting deliveries towards the DLQ.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(e) => e.code().is_some_and(|code| is_outage_code(&code)),
        _ => false,
    }
}

/// Whether `error` is a statement that gave up waiting for a lock (`lock_timeout`).
pub fn is_lock_timeout(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

/// Turns the violation of one named constraint (a unique email, say) into a store's own error;
/// any other failure stays a database error.
pub trait OnConstraint<T> {
    /// `error()` if `self` failed on `constraint`, else `self` with the error converted.
    fn on_constraint<E: From<sqlx::Error>>(self, constraint: &str, error: impl FnOnce() -> E)
    -> Result<T, E>;
}

impl<T> OnConstraint<T> for Result<T, sqlx::Error> {
    fn on_constraint<E: From<sqlx::Error>>(
        self,
        constraint: &str,
        error: impl FnOnce() -> E,
    ) -> Result<T, E> {
        match self {
            Err(sqlx::Error::Database(e)) if e.constraint() == Some(constraint) => Err(error()),
            other => other.map_err(E::from),
        }
    }
}

/// SQLSTATEs of a database that is down, failing over or out of resources.
fn is_outage_code(code: &str) -> bool {
    const CLASSES: [&str; 3] = [
        "08",  // connection exception
        "53",  // insufficient resources: disk full, out of memory, too many connections
        "57P", // admin, crash or immediate shutdown; cannot connect now
    ];
    const CODES: [&str; 3] = [
        "25006", // read-only transaction: a primary that became a standby during failover
        "57014", // statement cancelled (statement timeout, or cancelled by an operator)
        "58030", // I/O error in the server
    ];
    CLASSES.iter().any(|class| code.starts_with(class)) || CODES.contains(&code)
}

#[cfg(test)]
mod tests {
    use super::is_outage_code;

    #[test]
    fn outages_are_told_apart_from_failed_statements() {
        for outage in [
            "08006", "08001", "25006", "53100", "53200", "53300", "57014", "57P01", "57P02", "57P03", "58030",
        ] {
            assert!(is_outage_code(outage), "{outage} is an outage");
        }
        for failure in ["23505", "23503", "22P02", "42P01", "40001", "40P01", "P0001", "25P02"] {
            assert!(!is_outage_code(failure), "{failure} is a failed statement");
        }
    }
}
