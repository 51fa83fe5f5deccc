//! `ates-auth`: the auth service on its own port.

use std::net::SocketAddr;

use ates_auth::{AuthConfig, AuthService};
use clap::Parser;

#[derive(Parser)]
#[command(name = "ates-auth", about = "aTES auth: accounts, sign-in and token keys")]
struct Cli {
    #[command(flatten)]
    config: AuthConfig,
    /// Where to listen.
    #[arg(long, env = "ATES_HTTP", default_value = "127.0.0.1:8081")]
    http: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ates_web::init_logging("ates-auth")?;
    let cli = Cli::parse();
    let service = AuthService::build(&cli.config).await?;
    ates_web::run_standalone(cli.http, service.app(), |shutdown, workers| {
        service.spawn_workers(shutdown, workers)
    })
    .await
}
