//! `ates dev`: the whole system in one process, with its own servers when none are given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use ates_devservers::{NatsOptions, NatsServer, PostgresOptions, PostgresServer};
use ates_messaging::streams::{self, StreamSettings};
use ates_messaging::{db, nats};
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use clap::Args;
use sqlx::{Connection, PgPool};

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
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Clone)]
struct Infra {
    pool: PgPool,
    nats: async_nats::Client,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create the data dir {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir)?;

    let mut nats_server = None;
    let nats_url = match args.nats_url {
        Some(url) => url,
        None => {
            let options = NatsOptions { dir: data_dir.join("nats"), port: None };
            let server = nats_server.insert(NatsServer::start(options).await?);
            status(
                "nats-server",
                &format!("started at {} (data in {}/nats)", server.url(), data_dir.display()),
            );
            server.url()
        }
    };
    let mut pg_server = None;
    let database_url = match args.database_url {
        Some(url) => url,
        None => {
            let options = PostgresOptions { dir: data_dir.join("postgres"), port: None, durable: true };
            let server = pg_server.insert(PostgresServer::start(options).await?);
            create_database(&server.url("postgres"), "ates").await?;
            status(
                "postgres",
                &format!("started on port {} (data in {}/postgres)", server.port(), data_dir.display()),
            );
            server.url("ates")
        }
    };

    let client = nats::connect(&nats_url, "ates-dev").await?;
    let js = nats::jetstream(client.clone(), Duration::from_secs(10));
    streams::ensure(&js, &StreamSettings::default()).await.context("create the JetStream streams")?;
    status("streams", "ACCOUNTS, TASKS, ACCOUNTING, DLQ ready");
    let pool = db::connect(&database_url, "public", 4)?;

    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Infra { pool, nats: client });
    let listener = tokio::net::TcpListener::bind(args.http)
        .await
        .with_context(|| format!("cannot listen on {}", args.http))?;
    status("http", &format!("listening on http://{}", listener.local_addr()?));
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;

    eprintln!("stopping");
    if let Some(server) = pg_server.as_mut() {
        server.stop().await?;
    }
    if let Some(server) = nats_server.as_mut() {
        server.stop().await?;
    }
    Ok(())
}

fn status(part: &str, text: &str) {
    eprintln!("  {part:<12} {text}");
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

async fn ready(State(infra): State<Infra>) -> (StatusCode, &'static str) {
    let database = sqlx::query("SELECT 1").execute(&infra.pool).await.is_ok();
    let nats = infra.nats.connection_state() == async_nats::connection::State::Connected;
    match (database, nats) {
        (true, true) => (StatusCode::OK, "ready"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "the database is unreachable"),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "NATS is unreachable"),
    }
}

async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
