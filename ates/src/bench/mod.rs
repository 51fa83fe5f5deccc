//! `ates bench`: throughput measured against real servers, printed with the machine it ran on.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures on stdout")]

mod accounting;
mod analytics;
mod backbone;
mod machine;
mod system;
mod tasks;
mod tokens;

use ates::system::SystemConfig;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Raw JetStream and PostgreSQL rates, then relay and consumer throughput against them.
    Backbone(backbone::BackboneArgs),
    /// Token verifications per second on one core, and sign-in latency.
    Tokens(tokens::TokensArgs),
    /// Task creation throughput and latency with the whole system running, and a big shuffle.
    Tasks(tasks::TasksArgs),
    /// Accounting draining a backlog of task events, against the raw PostgreSQL insert rate.
    Accounting(accounting::AccountingArgs),
    /// Rebuilding analytics from a year of history, and the latency of its endpoints.
    Analytics(analytics::AnalyticsArgs),
    /// The whole system, each service its own process, under an open-loop load from another
    /// process: create rate and latency, freshness, memory, then a backlog drained by accounting.
    System(system::SystemArgs),
    /// The load generator `ates bench system` runs as its own process.
    #[command(hide = true)]
    Load(system::LoadArgs),
}

pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Backbone(args) => backbone::run(args).await,
        BenchCommand::Tokens(args) => tokens::run(args).await,
        BenchCommand::Tasks(args) => tasks::run(args).await,
        BenchCommand::Accounting(args) => accounting::run(args).await,
        BenchCommand::Analytics(args) => analytics::run(args).await,
        BenchCommand::System(args) => system::run(args).await,
        BenchCommand::Load(args) => system::load(args).await,
    }
}

/// Where PostgreSQL's time goes during a measurement: `--statements N` prints the N statements
/// that took the most of it, from `pg_stat_statements`.
#[derive(clap::Args, Default, Clone, Copy)]
pub struct Statements {
    /// Also print the N statements PostgreSQL spent most time on during the measurement.
    #[arg(long = "statements", value_name = "N", default_value_t = 0)]
    top: usize,
}

impl Statements {
    /// Starts counting from zero (nothing when not asked for).
    pub async fn reset(self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        if self.top > 0 {
            sqlx::raw_sql(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements SCHEMA public;
                 SELECT public.pg_stat_statements_reset();",
            )
            .execute(pool)
            .await?;
        }
        Ok(())
    }

    /// Prints the statements that took the most time since [`Statements::reset`], the whole
    /// server's, with their calls, rows and total and mean time.
    #[allow(clippy::float_arithmetic, reason = "milliseconds, not money")]
    pub async fn print(self, pool: &sqlx::PgPool) -> anyhow::Result<()> {
        if self.top == 0 {
            return Ok(());
        }
        let rows: Vec<(f64, i64, i64, String)> = sqlx::query_as(
            "SELECT total_exec_time, calls, rows, regexp_replace(query, '\\s+', ' ', 'g')
             FROM public.pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1",
        )
        .bind(i64::try_from(self.top)?)
        .fetch_all(pool)
        .await?;
        let all: f64 =
            sqlx::query_scalar("SELECT coalesce(sum(total_exec_time), 0) FROM public.pg_stat_statements")
                .fetch_one(pool)
                .await?;
        println!("\nPostgreSQL statements by time ({:.1} s in all):", all / 1000.0);
        for (total, calls, rows, query) in rows {
            let query: String = query.chars().take(150).collect();
            println!(
                "{:>8.1} s {:>4.0}% {:>9} calls {:>10} rows {:>8.3} ms/call  {query}",
                total / 1000.0,
                total * 100.0 / all.max(1.0),
                grouped(u64::try_from(calls)?),
                grouped(u64::try_from(rows)?),
                total / calls.max(1) as f64,
            );
        }
        Ok(())
    }
}

/// PostgreSQL settings on top of the usual ones, to measure a tuning.
#[derive(clap::Args, Default, Clone)]
pub struct PostgresSettings {
    /// A PostgreSQL setting (`name=value`) on top of the usual ones, to measure a tuning; may be
    /// given more than once.
    #[arg(long = "postgres-setting", value_name = "NAME=VALUE", value_parser = postgres_setting)]
    settings: Vec<String>,
}

/// A `--postgres-setting`: `name=value`, as `postgres -c` takes it.
fn postgres_setting(text: &str) -> Result<String, String> {
    name_value(text, "max_wal_size=4GB").map(|_| text.to_owned())
}

/// A `--service-setting`: an environment variable's `NAME=VALUE`, split.
pub fn service_setting(text: &str) -> Result<(String, String), String> {
    name_value(text, "ATES_CONSUMER_BATCH_SIZE=2000").map(|(name, value)| (name.to_owned(), value.to_owned()))
}

/// `text` split at its first `=`, refused with `example` when it names nothing before it.
fn name_value<'a>(text: &'a str, example: &str) -> Result<(&'a str, &'a str), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => Ok((name, value)),
        _ => Err(format!("expected NAME=VALUE, e.g. {example}, not {text:?}")),
    }
}

/// What PostgreSQL has written to its write-ahead log since it started, to tell how much of a
/// measurement is WAL: its volume, the full-page images in it (a page's first change after a
/// checkpoint logs the whole page) and the checkpoints.
#[derive(Clone, Copy)]
pub struct Wal {
    bytes: i64,
    full_page_images: i64,
    checkpoints: i64,
}

impl Wal {
    /// The server's counters now. The volume is the WAL's insert position, exact at once; the
    /// full-page images and checkpoints come from the statistics views, which a backend may
    /// report up to 10 s late.
    pub async fn now(pool: &sqlx::PgPool) -> anyhow::Result<Wal> {
        let (bytes, full_page_images, version): (i64, i64, i32) = sqlx::query_as(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint, wal_fpi,
                    current_setting('server_version_num')::int
             FROM pg_stat_wal",
        )
        .fetch_one(pool)
        .await?;
        // PostgreSQL 17 moved the checkpoint counters to a view of their own.
        let checkpoints = match version {
            170_000.. => "SELECT num_timed + num_requested FROM pg_stat_checkpointer",
            _ => "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter",
        };
        let checkpoints = sqlx::query_scalar(checkpoints).fetch_one(pool).await?;
        Ok(Wal { bytes, full_page_images, checkpoints })
    }

    /// What was written since `before`, for `count` things (`what`).
    pub fn since(self, before: Wal, count: u64, what: &'static str) -> WalWritten {
        WalWritten {
            bytes: u64::try_from(self.bytes - before.bytes).unwrap_or(0),
            count,
            what,
            full_page_images: u64::try_from(self.full_page_images - before.full_page_images).unwrap_or(0),
            checkpoints: u64::try_from(self.checkpoints - before.checkpoints).unwrap_or(0),
        }
    }
}

/// What PostgreSQL wrote to its WAL during one measurement of `count` things (`what`).
#[derive(Debug, Clone, Copy)]
pub struct WalWritten {
    bytes: u64,
    count: u64,
    what: &'static str,
    full_page_images: u64,
    checkpoints: u64,
}

impl WalWritten {
    #[allow(clippy::float_arithmetic, reason = "sizes for reading, not money")]
    fn bytes_each(&self) -> f64 {
        self.bytes as f64 / self.count.max(1) as f64
    }

    /// The same figures for `--json`: `bytes`, `bytes_each` (per thing), `full_page_images`,
    /// `checkpoints`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "bytes": self.bytes,
            "bytes_each": self.bytes_each().round(),
            "full_page_images": self.full_page_images,
            "checkpoints": self.checkpoints,
        })
    }
}

impl std::fmt::Display for WalWritten {
    #[allow(clippy::float_arithmetic, reason = "sizes for reading, not money")]
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} GB ({:.1} kB a {}), {} full-page images, {} checkpoints",
            self.bytes as f64 / 1e9,
            self.bytes_each() / 1e3,
            self.what,
            grouped(self.full_page_images),
            self.checkpoints
        )
    }
}

/// A throw-away nats-server and a durable (fsync on) PostgreSQL for one benchmark run.
pub struct Servers {
    pub nats: ates_devservers::NatsServer,
    pub postgres: ates_devservers::PostgresServer,
    _dir: tempfile::TempDir,
}

impl Servers {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Statements::default(), &PostgresSettings::default()).await
    }

    /// The servers, PostgreSQL counting what each statement costs when `statements` asks for it
    /// and run with the settings `asked` for on top of the usual ones.
    pub async fn start_with(statements: Statements, asked: &PostgresSettings) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut settings = Vec::new();
        if statements.top > 0 {
            settings.push("shared_preload_libraries=pg_stat_statements".to_owned());
        }
        // Last, so that a setting asked for wins.
        settings.extend_from_slice(&asked.settings);
        let options = ates_devservers::PostgresOptions {
            dir: dir.path().to_path_buf(),
            port: None,
            durable: true,
            superuser_password: None,
            settings,
        };
        let postgres = ates_devservers::PostgresServer::start(options).await?;
        Ok(Servers { nats: ates_devservers::NatsServer::temporary().await?, postgres, _dir: dir })
    }

    /// A scratch folder that lives as long as the servers.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// The system's settings on these servers, served at `base_url`: the bench admin, mail
    /// into the scratch folder, and sign-in limits out of the way of the load.
    pub fn system_config(&self, base_url: &str) -> anyhow::Result<SystemConfig> {
        let (database, nats, mail) =
            (self.postgres.url("postgres"), self.nats.url(), self.dir().join("mail").display().to_string());
        let max = u32::MAX.to_string();
        let config = SystemConfig::parse_from([
            "--database-url",
            &database,
            "--nats-url",
            &nats,
            "--mail-dir",
            &mail,
            "--admin-email",
            BENCH_ADMIN.0,
            "--admin-password",
            BENCH_ADMIN.1,
            "--login-attempts-per-account",
            &max,
            "--login-attempts-per-address",
            &max,
        ])?;
        Ok(config.served_at(base_url))
    }
}

/// Creates `streams` the way their producers would: a benchmark that publishes in a
/// producer's place runs without it.
pub async fn provision(backbone: &ates_messaging::Backbone, streams: &[&str]) -> anyhow::Result<()> {
    Ok(ates_messaging::streams::ensure(&backbone.js, &backbone.config.streams, streams).await?)
}

/// The benchmarks' admin: email and password.
pub const BENCH_ADMIN: (&str, &str) = ("bench@ates.test", "bench-password");

/// A rate in units per second.
pub fn per_second(count: usize, elapsed: std::time::Duration) -> u64 {
    let micros = elapsed.as_micros().max(1);
    u64::try_from(count as u128 * 1_000_000 / micros).unwrap_or(u64::MAX)
}

/// `12345678` as `12,345,678`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `part / whole` with two decimals, as text.
pub fn ratio(part: u64, whole: u64) -> String {
    let hundredths = part.saturating_mul(100) / whole.max(1);
    format!("{}.{:02}", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_are_formatted_for_people() {
        assert_eq!(super::grouped(1_234_567), "1,234,567");
        assert_eq!(super::grouped(999), "999");
        assert_eq!(super::ratio(1, 3), "0.33");
        assert_eq!(super::ratio(5, 2), "2.50");
        assert_eq!(super::per_second(500, std::time::Duration::from_millis(250)), 2000);
    }

    #[test]
    fn a_postgres_or_service_setting_is_a_name_and_a_value() {
        assert_eq!(super::postgres_setting("max_wal_size=4GB").as_deref(), Ok("max_wal_size=4GB"));
        assert_eq!(super::postgres_setting("search_path=a,b").as_deref(), Ok("search_path=a,b"));
        for wrong in ["max_wal_size", "=4GB", "max wal=4GB", ""] {
            let refused = super::postgres_setting(wrong).unwrap_err();
            assert!(refused.contains("NAME=VALUE"), "{wrong:?}: {refused}");
            let refused = super::service_setting(wrong).unwrap_err();
            assert!(refused.contains("ATES_CONSUMER_BATCH_SIZE=2000"), "{wrong:?}: {refused}");
        }
        let setting = super::service_setting("ATES_CONSUMER_BATCH_SIZE=2000").unwrap();
        assert_eq!(setting, ("ATES_CONSUMER_BATCH_SIZE".to_owned(), "2000".to_owned()));
    }
}
