//! `ates-analytics`: analytics on its own port.

use std::net::SocketAddr;

use ates_analytics::{AnalyticsConfig, AnalyticsService};
use clap::Parser;

#[derive(Parser)]
#[command(name = "ates-analytics", about = "aTES analytics")]
struct Cli {
    #[command(flatten)]
    config: AnalyticsConfig,
    /// Where to listen.
    #[arg(long, env = "ATES_HTTP", default_value = "127.0.0.1:8084")]
    http: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ates_web::init_logging("ates-analytics")?;
    let cli = Cli::parse();
    let service = AnalyticsService::build(&cli.config).await?;
    ates_web::run_standalone(cli.http, service.app(), |shutdown, workers| {
        service.spawn_workers(shutdown, workers)
    })
    .await
}
