//! Operating the event backbone: streams, republish and the DLQ.

use std::io::Write as _;
use std::time::Duration;

use anyhow::bail;
use ates_messaging::dlq::Dlq;
use ates_messaging::outbox::republish as republish_range;
use ates_messaging::streams::{self, StreamSettings};
use ates_messaging::{NatsConnection, db};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

/// Where NATS is, and the operator's identity there.
#[derive(Args)]
pub struct NatsArgs {
    #[command(flatten)]
    connection: NatsConnection,
}

impl NatsArgs {
    pub async fn jetstream(&self) -> anyhow::Result<async_nats::jetstream::Context> {
        ates::operator_jetstream(&self.connection, "ates-cli", Duration::from_secs(10)).await
    }
}

#[derive(Args)]
pub struct StreamsArgs {
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    pub settings: StreamSettings,
}

pub async fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let js = args.nats.jetstream().await?;
    streams::ensure(&js, &args.settings, &streams::ALL).await?;
    for (name, subjects) in streams::STREAMS {
        eprintln!("stream {name} ({subjects}) is ready");
    }
    Ok(())
}

#[derive(Args)]
pub struct RepublishArgs {
    #[command(flatten)]
    nats: NatsArgs,
    /// The service database.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The service whose event log to publish: auth, task_tracker, accounting or analytics.
    #[arg(long)]
    schema: String,
    /// Start of the range: an RFC 3339 time, or a duration ago such as `2h`.
    #[arg(long, value_parser = ates::replay::parse_time)]
    since: DateTime<Utc>,
    /// End of the range (exclusive); now by default.
    #[arg(long, value_parser = ates::replay::parse_time)]
    until: Option<DateTime<Utc>>,
}

pub async fn republish(args: RepublishArgs) -> anyhow::Result<()> {
    let until = args.until.unwrap_or_else(Utc::now);
    if until <= args.since {
        bail!("--until ({until}) must be after --since ({})", args.since);
    }
    let pool = db::connect(&args.database_url, &args.schema, 2)?;
    let js = args.nats.jetstream().await?;
    eprintln!("republishing {}'s events from {} to {until}", args.schema, args.since);
    let stats = republish_range(&pool, &js, args.since, until, |progress| {
        eprint!("\r{} stored again, {} already in the stream", progress.stored, progress.duplicates);
        let _ = std::io::stderr().flush();
    })
    .await?;
    eprintln!("\rdone: {} stored again, {} already in the stream", stats.stored, stats.duplicates);
    Ok(())
}

#[derive(Subcommand)]
pub enum DlqCommand {
    /// List parked messages.
    List {
        #[command(flatten)]
        nats: NatsArgs,
        /// Only this consumer's.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Publish parked messages again on their original subject and remove them from the DLQ
    /// (each only if the stream it came from still holds the same message there).
    Redrive {
        #[command(flatten)]
        nats: NatsArgs,
        /// DLQ sequence numbers, as `ates dlq list` shows them.
        sequences: Vec<u64>,
        /// Every parked message of this consumer instead.
        #[arg(long, conflicts_with = "sequences")]
        consumer: Option<String>,
    },
    /// Remove parked messages from the DLQ without publishing them (ones that cannot or need
    /// not be re-driven).
    Discard {
        #[command(flatten)]
        nats: NatsArgs,
        /// DLQ sequence numbers, as `ates dlq list` shows them.
        #[arg(required = true)]
        sequences: Vec<u64>,
    },
}

pub async fn dlq(command: DlqCommand) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { nats, consumer } => {
            let parked = Dlq::new(nats.jetstream().await?)
                .list(consumer.as_deref())
                .await
                .map_err(anyhow::Error::from_boxed)?;
            if parked.is_empty() {
                eprintln!("the DLQ is empty");
            }
            let mut out = std::io::stdout().lock();
            for p in parked {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{} #{} ({} deliveries)\t{}\t{}",
                    p.sequence,
                    p.parked_at,
                    p.consumer,
                    p.stream,
                    p.stream_sequence,
                    p.deliveries,
                    p.reason,
                    p.detail
                )?;
            }
            Ok(())
        }
        DlqCommand::Redrive { nats, sequences, consumer } => {
            let dlq = Dlq::new(nats.jetstream().await?);
            let sequences = match consumer {
                Some(consumer) => dlq
                    .list(Some(&consumer))
                    .await
                    .map_err(anyhow::Error::from_boxed)?
                    .into_iter()
                    .map(|p| p.sequence)
                    .collect(),
                None if sequences.is_empty() => bail!("name DLQ sequences to re-drive, or --consumer"),
                None => sequences,
            };
            // One refusal does not stop the others; the command fails if any was refused.
            let mut refused = 0;
            for sequence in sequences {
                match dlq.redrive(sequence, None).await {
                    Ok(redriven) => eprintln!("re-drove DLQ message {sequence} to {}", redriven.subject),
                    Err(e) => {
                        refused += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if refused > 0 {
                bail!("{refused} parked message(s) were not re-driven (see above)");
            }
            Ok(())
        }
        DlqCommand::Discard { nats, sequences } => {
            let dlq = Dlq::new(nats.jetstream().await?);
            for sequence in sequences {
                dlq.discard(sequence).await.map_err(anyhow::Error::from_boxed)?;
                eprintln!("removed DLQ message {sequence}");
            }
            Ok(())
        }
    }
}
