//! `ates dev`: the whole system in one process on one port, with its own NATS and PostgreSQL
//! when none are given.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ates::credentials::Credentials;
use ates::system::{System, SystemConfig};
use ates_devservers::{NatsCluster, NatsOptions, NatsServer, PostgresOptions, PostgresServer};
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
    /// How many nats-server nodes to run when `NATS_URL` is not set: 3 (or 5) makes a JetStream
    /// cluster whose streams are replicated to every node (kill one, or two, and nothing stops).
    #[arg(long, default_value_t = 1, value_parser = odd_cluster_size)]
    nats_nodes: u16,
    /// Print the settings `ates dev` would run with (secrets hidden) and exit.
    #[arg(long)]
    print_config: bool,
    /// Every service's settings: without `DATABASE_URL` / `NATS_URL` it starts its own servers,
    /// without `ATES_ADMIN_PASSWORD` it generates one, without `SMTP_URL` or `ATES_MAIL_DIR`
    /// payout mail goes to <data-dir>/mail.
    #[command(flatten)]
    system: SystemConfig,
}

/// 1, 3 or 5: an even number of nodes survives no more failures than one node fewer.
fn odd_cluster_size(text: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(nodes @ (1 | 3 | 5)) => Ok(nodes),
        _ => Err(format!("{text} nodes: use 1, 3 or 5 (a majority must survive a failure)")),
    }
}

/// The first admin when `ATES_ADMIN_EMAIL` is not set.
const DEV_ADMIN_EMAIL: &str = "admin@ates.local";

/// Servers this process started, stopped in reverse order.
#[derive(Default)]
struct LocalServers {
    nats: Option<NatsServer>,
    nats_cluster: Option<NatsCluster>,
    postgres: Option<PostgresServer>,
}

impl LocalServers {
    async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.postgres.as_mut() {
            server.stop().await?;
        }
        if let Some(cluster) = self.nats_cluster.as_mut() {
            cluster.stop().await?;
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
    // The identities of the servers it runs: every service its own NATS user and database role.
    let credentials = Credentials::load_or_create(&data_dir.join("credentials.json"))?;
    let backbone = &config.backbone;
    let nats_url = match &backbone.nats.nats_url {
        Some(url) => url.clone(),
        None => {
            let url = start_nats(args.nats_nodes, data_dir, &credentials, servers).await?;
            config.nats_users = Some(credentials.clone());
            let streams = &mut config.backbone.streams;
            if args.nats_nodes > 1 && streams.replicas == 1 {
                streams.replicas = usize::from(args.nats_nodes);
            }
            url
        }
    };
    let database_url = match &config.backbone.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            let options = PostgresOptions {
                dir: data_dir.join("postgres"),
                port: None,
                durable: true,
                superuser_password: Some(credentials.superuser_password().to_owned()),
                settings: Vec::new(),
            };
            let server = servers.postgres.insert(PostgresServer::start(options).await?);
            create_database(&server.url("postgres"), "ates").await?;
            credentials.provision_roles(&server.url("ates")).await?;
            config.database_roles = Some(credentials.clone());
            status(
                "postgres",
                &format!(
                    "port {} (data in {}; a role per service, passwords in {})",
                    server.port(),
                    data_dir.join("postgres").display(),
                    data_dir.join("credentials.json").display()
                ),
            );
            server.url("ates")
        }
    };
    config.backbone = config.backbone.connected_to(&database_url, &nats_url);
    write_operator_env(data_dir, &config, &credentials)?;
    let admin = &mut config.auth;
    let admin_email = admin.admin_email.get_or_insert_with(|| DEV_ADMIN_EMAIL.to_owned()).clone();
    // Printed only when `ates dev` made it up: a password given in the environment stays there.
    let shown_password = match &admin.admin_password {
        Some(_) => "(ATES_ADMIN_PASSWORD)".to_owned(),
        None => {
            let password = dev_admin_password(data_dir)?;
            admin.admin_password = Some(password.as_str().into());
            password
        }
    };
    let mail = &mut config.accounting.mail;
    let mail_dir = mail.dir.get_or_insert_with(|| data_dir.join("mail")).clone();
    let system = System::build(&config).await?;
    status("services", "auth, task tracker, accounting, analytics");
    status("http", &format!("http://{}", args.http));
    status("admin", &format!("{admin_email} / {shown_password}"));
    let authenticator = ates_tokens::Authenticator::new(std::sync::Arc::new(config.tokens.verifier()));
    let app = system.app_with(ates::devmail::router(mail_dir, authenticator));
    ates_web::run_standalone(args.http, app, |shutdown, workers| system.spawn_workers(shutdown, workers))
        .await
}

/// Starts `nodes` nats-servers under the data dir accepting only the services' and the
/// operator's users, and returns their URLs.
async fn start_nats(
    nodes: u16,
    data_dir: &Path,
    credentials: &Credentials,
    servers: &mut LocalServers,
) -> anyhow::Result<String> {
    let users = credentials.nats_server_users();
    let (url, dir) = if nodes == 1 {
        let dir = data_dir.join("nats");
        let options = NatsOptions { dir: dir.clone(), users, ..Default::default() };
        (servers.nats.insert(NatsServer::start(options).await?).url(), dir)
    } else {
        let dir = data_dir.join("nats-cluster");
        let cluster = NatsCluster::start(&dir, usize::from(nodes), users).await?;
        (servers.nats_cluster.insert(cluster).urls(), dir)
    };
    status("nats-server", &format!("{url} (data in {}; a user per service)", dir.display()));
    Ok(url)
}

/// Writes `<data-dir>/operator.env` (readable by its owner only): the settings the command line
/// (`ates dlq`, `ates replay`, …) needs to reach this system as the operator.
fn write_operator_env(
    data_dir: &Path,
    config: &SystemConfig,
    credentials: &Credentials,
) -> anyhow::Result<()> {
    let backbone = &config.backbone;
    let mut lines = vec![format!("NATS_URL={}", backbone.nats.url())];
    if config.nats_users.is_some() {
        let operator = credentials.nats_user(ates::credentials::OPERATOR);
        lines.push(format!("NATS_USER={}", operator.name));
        lines.push(format!("NATS_PASSWORD={}", operator.password.expose_secret()));
    }
    if let Some(url) = &backbone.database_url {
        lines.push(format!("DATABASE_URL={}", url.expose_secret()));
    }
    let file = data_dir.join("operator.env");
    ates_devservers::write_secret(&file, &(lines.join("\n") + "\n"))?;
    status("operator", &format!("set -a; . {}; set +a  # then ates dlq, ates replay, …", file.display()));
    Ok(())
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
    ates_devservers::write_secret(&file, &password)?;
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
