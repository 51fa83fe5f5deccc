//! `ates`: the aTES command line.

mod bench;
mod dev;
mod operate;
mod schemas;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ates", version, about = "aTES: task tracker and payroll of UberPopug Inc.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole system on this machine, starting NATS and PostgreSQL if none are given.
    Dev(Box<dev::DevArgs>),
    /// Generate or check the committed event schema files.
    #[command(subcommand)]
    Schemas(schemas::SchemasCommand),
    /// Create or update the JetStream streams.
    Streams(operate::StreamsArgs),
    /// Publish a time range of a service's event log again.
    Republish(operate::RepublishArgs),
    /// List or re-drive messages parked on the dead-letter queue.
    #[command(subcommand)]
    Dlq(operate::DlqCommand),
    /// Rebuild a read model from the streams.
    Replay(ates::replay::ReplayArgs),
    /// Check that every event reached every consumer and every fee and reward is there once.
    Audit(Box<ates::audit::AuditArgs>),
    /// Measure throughput against real local servers.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let _telemetry = ates_web::telemetry::init("ates", "warn")?;
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    match cli.command {
        Command::Dev(args) => runtime.block_on(dev::run(*args)),
        Command::Schemas(command) => schemas::run(command),
        Command::Streams(args) => runtime.block_on(operate::streams(args)),
        Command::Republish(args) => runtime.block_on(operate::republish(args)),
        Command::Dlq(command) => runtime.block_on(operate::dlq(command)),
        Command::Bench(command) => runtime.block_on(bench::run(command)),
        Command::Replay(args) => runtime.block_on(ates::replay::run(args)).map(|_| ()),
        Command::Audit(args) => runtime.block_on(ates::audit::run(*args)),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::{Cli, Command};

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn stream_settings_take_the_services_flag_names_and_the_short_ones() {
        let cli =
            Cli::try_parse_from(["ates", "streams", "--replicas", "3", "--stream-max-age", "1h"]).unwrap();
        let Command::Streams(args) = cli.command else { panic!("not the streams command") };
        assert_eq!(args.settings.replicas, 3);
        assert_eq!(args.settings.max_age, std::time::Duration::from_secs(3600));
    }
}
