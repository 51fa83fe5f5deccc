//! `ates-accounting`: accounting on its own port.

use std::net::SocketAddr;

use ates_accounting::{AccountingConfig, AccountingService};
use clap::Parser;

#[derive(Parser)]
#[command(name = "ates-accounting", about = "aTES accounting")]
struct Cli {
    #[command(flatten)]
    config: AccountingConfig,
    /// Where to listen.
    #[arg(long, env = "ATES_HTTP", default_value = "127.0.0.1:8083")]
    http: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ates_web::init_logging("ates-accounting")?;
    let cli = Cli::parse();
    let service = AccountingService::build(&cli.config).await?;
    ates_web::run_standalone(cli.http, service.app(), |shutdown, workers| {
        service.spawn_workers(shutdown, workers)
    })
    .await
}
