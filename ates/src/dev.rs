//! `ates dev`: the whole system in one process on one port, with its own NATS and PostgreSQL
//! when none are given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ates::system::{System, SystemConfig};
use ates_devservers::{NatsOptions, NatsServer, PostgresOptions, PostgresServer};
use clap::Args;
use secrecy::ExposeSecret;
use sqlx::Connection;

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Where the web UI and the API listen.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// Where the local servers keep their data between runs.
    #[arg(long, default_value = ".ates")]
    data_dir: PathBuf,
    /// Print the settings `ates dev` would run with (secrets hidden) and exit.
    #[arg(long)]
    print_config: bool,
    /// Every service's settings: without `DATABASE_URL` / `NATS_URL` it starts its own servers,
    /// without `ATES_ADMIN_PASSWORD` it generates one, without `SMTP_URL` or `ATES_MAIL_DIR`
    /// payout mail goes to <data-dir>/mail.
    #[command(flatten)]
    system: SystemConfig,
}

/// The first admin when `ATES_ADMIN_EMAIL` is not set.
const DEV_ADMIN_EMAIL: &str = "admin@ates.local";

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
    if args.print_config {
        #[allow(clippy::print_stdout, reason = "printing the settings is what was asked for")]
        {
            println!("{args:#?}");
        }
        return Ok(());
    }
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
    let mut config = args.system.clone().served_at(&format!("http://{}", loopback(args.http)));
    let backbone = &config.backbone;
    let nats_url = match &backbone.nats.nats_url {
        Some(url) => url.clone(),
        None => {
            let options = NatsOptions { dir: data_dir.join("nats"), ..Default::default() };
            let server = servers.nats.insert(NatsServer::start(options).await?);
            status("nats-server", &format!("{} (data in {})", server.url(), data_dir.join("nats").display()));
            server.url()
        }
    };
    let database_url = match &backbone.database_url {
        Some(url) => url.expose_secret().to_owned(),
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
    config.backbone = config.backbone.connected_to(&database_url, &nats_url);
    let admin = &mut config.auth;
    let admin_email = admin.admin_email.get_or_insert_with(|| DEV_ADMIN_EMAIL.to_owned()).clone();
    let admin_password = match &admin.admin_password {
        Some(password) => password.expose_secret().to_owned(),
        None => dev_admin_password(data_dir)?,
    };
    admin.admin_password = Some(admin_password.as_str().into());
    let mail = &mut config.accounting.mail;
    let mail_dir = mail.dir.get_or_insert_with(|| data_dir.join("mail")).clone();
    let system = System::build(&config).await?;
    status("services", "auth, task tracker, accounting, analytics");
    status("http", &format!("http://{}", args.http));
    status("admin", &format!("{admin_email} / {admin_password}"));
    let authenticator = ates_tokens::Authenticator::new(std::sync::Arc::new(config.tokens.verifier()));
    let app = system.app_with(ates::devmail::router(mail_dir, authenticator));
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
