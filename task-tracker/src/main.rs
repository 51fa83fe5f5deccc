//! `ates-task-tracker`: the task tracker on its own port.

use std::net::SocketAddr;

use ates_task_tracker::{TaskTrackerConfig, TaskTrackerService};
use clap::Parser;

#[derive(Parser)]
#[command(name = "ates-task-tracker", about = "aTES task tracker")]
struct Cli {
    #[command(flatten)]
    config: TaskTrackerConfig,
    /// Where to listen.
    #[arg(long, env = "ATES_HTTP", default_value = "127.0.0.1:8082")]
    http: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = ates_web::init_logging("ates-task-tracker")?;
    let cli = Cli::parse();
    let service = TaskTrackerService::build(&cli.config).await?;
    ates_web::run_standalone(cli.http, service.app(), |shutdown, workers| {
        service.spawn_workers(shutdown, workers)
    })
    .await
}
