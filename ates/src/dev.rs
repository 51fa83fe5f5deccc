//! `ates dev`: the whole system in one process on one port, with its own NATS and PostgreSQL
//! when none are given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ates::system::{System, SystemConfig};
use ates_accounting::mail::MailConfig;
use ates_devservers::{NatsOptions, NatsServer, PostgresOptions, PostgresServer};
use ates_messaging::BackboneConfig;
use clap::Args;
use sqlx::Connection;

#[derive(Args)]
pub struct DevArgs {
    /// Where the web UI and the API listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Where the local servers keep their data between runs.
    #[arg(long, default_value = ".ates")]
    data_dir: PathBuf,
    /// Use this NATS server instead of starting one.
    #[arg(long, env = "NATS_URL")]
    nats_url: Option<String>,
    /// Use this PostgreSQL database instead of starting a server.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// The admin's email, created when no admin exists.
    #[arg(long, env = "ATES_ADMIN_EMAIL", default_value = "admin@ates.local")]
    admin_email: String,
    /// The company's time zone: business dates and the midnight cut-off follow it.
    #[arg(long, env = "ATES_TIMEZONE", default_value = "UTC", value_parser = ates_web::parse_time_zone)]
    timezone: chrono_tz::Tz,
    /// When billing days close: six cron fields (seconds first) in the time zone.
    #[arg(long, env = "ATES_CLOSE_SCHEDULE", default_value = "0 0 0 * * *", value_parser = ates_accounting::jobs::parse_schedule)]
    close_schedule: String,
    /// The SMTP server for payout mail; without one, mail is written to <data-dir>/mail as .eml files.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// The admin's password; without one, a generated password is kept in the data dir.
    #[arg(long, env = "ATES_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
}

/// Servers this process started, stopped in reverse order.
#[derive(Default)]
struct LocalServers {
    nats: Option<NatsServer>,
    postgres: Option<PostgresServer>,
}

impl LocalServers {
    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.postgres.as_mut() {
            server.stop().await?;
        }
        if let Some(server) = self.nats.as_mut() {
            server.stop().await?;
        }
        Ok(())
    }
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;
    let mut servers = LocalServers::default();
    let result = run_with(&args, &data_dir, &mut servers).await;
    eprintln!("stopping");
    servers.stop().await?;
    result
}

async fn run_with(args: &DevArgs, data_dir: &Path, servers: &mut LocalServers) -> anyhow::Result<()> {
    let nats_url = match &args.nats_url {
        Some(url) => url.clone(),
        None => {
            let options = NatsOptions { dir: data_dir.join("nats"), port: None };
            let server = servers.nats.insert(NatsServer::start(options).await?);
            status("nats-server", &format!("{} (data in {})", server.url(), data_dir.join("nats").display()));
            server.url()
        }
    };
    let database_url = match &args.database_url {
        Some(url) => url.clone(),
        None => {
            let options = PostgresOptions { dir: data_dir.join("postgres"), port: None, durable: true };
            let server = servers.postgres.insert(PostgresServer::start(options).await?);
            create_database(&server.url("postgres"), "ates").await?;
            status(
                "postgres",
                &format!("port {} (data in {})", server.port(), data_dir.join("postgres").display()),
            );
            server.url("ates")
        }
    };
    let admin_password = match &args.admin_password {
        Some(password) => password.clone(),
        None => dev_admin_password(data_dir)?,
    };
    let config = SystemConfig {
        backbone: BackboneConfig::new(&database_url, &nats_url),
        base_url: format!("http://{}", loopback(args.http)),
        admin_email: args.admin_email.clone(),
        admin_password: admin_password.clone(),
        timezone: args.timezone,
        mail: MailConfig {
            smtp_url: args.smtp_url.clone(),
            dir: data_dir.join("mail"),
            ..MailConfig::files(data_dir.join("mail"))
        },
        close_schedule: args.close_schedule.clone(),
    };
    let system = System::build(&config, |_| {}).await?;
    status("services", "auth, task tracker, accounting, analytics");
    status("http", &format!("http://{}", args.http));
    status("admin", &format!("{} / {admin_password}", args.admin_email));
    let authenticator = ates_tokens::Authenticator::new(std::sync::Arc::new(config.tokens().verifier()));
    let app = system.app_with(ates::devmail::router(data_dir.join("mail"), authenticator));
    ates_web::run_standalone(args.http, app, |shutdown, workers| system.spawn_workers(shutdown, workers))
        .await
}

/// The address to reach `bind` from this machine: 127.0.0.1 for a wildcard bind.
fn loopback(bind: SocketAddr) -> SocketAddr {
    if bind.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], bind.port())) } else { bind }
}

fn status(part: &str, text: &str) {
    eprintln!("  {part:<12} {text}");
}

/// The dev admin's password: generated on the first run and kept in the data dir.
fn dev_admin_password(data_dir: &Path) -> anyhow::Result<String> {
    let file = data_dir.join("admin-password");
    if let Ok(password) = std::fs::read_to_string(&file) {
        return Ok(password.trim().to_owned());
    }
    let password = format!("popug-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::write(&file, &password)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok(password)
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut admin)
        .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await?;
    }
    Ok(())
}
