//! `ates replay`: rebuild a read model from the streams, with a progress bar.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use ates_accounts_replica::AccountsReplica;
use ates_analytics::dashboards::Dashboards;
use ates_messaging::permissions::Subscription;
use ates_messaging::projection::{self, Source};
use ates_messaging::replay::{ReplayProgress, ReplaySpec, StartAt, replay};
use ates_messaging::{db, streams};
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

/// What to replay, from where.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// The consumer whose read model to rebuild: `analytics` (the dashboards), or the accounts
    /// replica of a service: `task-tracker-accounts`, `accounting-accounts`, `analytics-accounts`.
    pub consumer: String,
    #[command(flatten)]
    pub from: From,
    /// With `--from-seq` on a consumer of several streams: the stream the sequence is in.
    #[arg(long)]
    pub stream: Option<String>,
    /// The database of the consumer's service.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    #[command(flatten)]
    pub nats: ates_messaging::NatsConnection,
    /// For the dashboards: the day a task was completed on.
    #[command(flatten)]
    pub calendar: ates_web::Calendar,
}

/// Where the replay starts.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct From {
    /// Rebuild everything: the dashboards into fresh tables swapped in when caught up.
    #[arg(long)]
    pub from_start: bool,
    /// Apply again what was published since this time (RFC 3339, or a duration ago like `2h`);
    /// what the read model already has is skipped.
    #[arg(long, value_parser = parse_time)]
    pub since: Option<DateTime<Utc>>,
    /// Apply again from this stream sequence on.
    #[arg(long)]
    pub from_seq: Option<u64>,
}

/// Parses an RFC 3339 time, or a duration before now such as `90m`.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a duration like 2h"))?;
    Ok(Utc::now() - chrono::Duration::from_std(ago).map_err(|e| e.to_string())?)
}

/// The read models `ates replay` knows.
enum Target {
    Dashboards,
    /// The accounts replica in `schema`, which its durable consumer `consumer` keeps.
    Replica {
        schema: &'static str,
        consumer: &'static str,
    },
}

fn target(consumer: &str) -> anyhow::Result<Target> {
    Ok(match consumer {
        "analytics" => Target::Dashboards,
        "task-tracker-accounts" => {
            Target::Replica { schema: "task_tracker", consumer: "task-tracker-accounts" }
        }
        "accounting-accounts" => Target::Replica { schema: "accounting", consumer: "accounting-accounts" },
        "analytics-accounts" => Target::Replica { schema: "analytics", consumer: "analytics-accounts" },
        other => bail!(
            "{other:?} has no read model to replay; use analytics, task-tracker-accounts, accounting-accounts or analytics-accounts"
        ),
    })
}

/// What a replay did: messages read and applied per stream, and the generation written.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub generation: Option<i64>,
    pub streams: Vec<(String, ReplayProgress)>,
}

/// Runs `ates replay`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<Outcome> {
    let target = target(&args.consumer)?;
    let js = crate::operator_jetstream(&args.nats, "ates-replay", Duration::from_secs(30)).await?;
    let bars = Bars::default();
    let outcome = match target {
        Target::Dashboards => {
            let pool = db::connect(&args.database_url, ates_analytics::SCHEMA, 8)?;
            let dashboards = Arc::new(Dashboards { zone: args.calendar.timezone });
            let report = if args.from.from_start {
                projection::rebuild(&js, &pool, dashboards, &ates_analytics::SOURCES, |s, p| bars.show(s, p))
                    .await
            } else {
                let sources = sources(&args, &ates_analytics::SOURCES)?;
                projection::catch_up(&js, &pool, dashboards, &sources, |s, p| bars.show(s, p)).await
            }
            .map_err(anyhow::Error::from_boxed)?;
            Outcome { generation: Some(report.generation), streams: report.streams }
        }
        Target::Replica { schema, consumer } => {
            let pool = db::connect(&args.database_url, schema, 4)?;
            let mut streams_done = Vec::new();
            for source in sources(&args, &[Subscription::all(streams::ACCOUNTS, consumer)])? {
                let stream = source.from.stream.to_owned();
                let spec = ReplaySpec {
                    stream: stream.clone(),
                    subjects: source.from.filter_subjects(),
                    start: source.start,
                    batch_size: 1000,
                    dedupe_key: None,
                };
                let progress = replay(&js, &pool, &spec, &AccountsReplica, |p| bars.show(&stream, p))
                    .await
                    .map_err(anyhow::Error::from_boxed)?;
                streams_done.push((stream, progress));
            }
            Outcome { generation: None, streams: streams_done }
        }
    };
    bars.finish();
    for (stream, progress) in &outcome.streams {
        eprintln!(
            "{stream}: read {} message(s), handled {}, skipped {} invalid",
            progress.read, progress.handled, progress.invalid
        );
    }
    if let Some(generation) = outcome.generation.filter(|_| args.from.from_start) {
        eprintln!("{} is rebuilt: generation {generation} is live", args.consumer);
    }
    Ok(outcome)
}

/// Where each stream's replay starts.
fn sources(args: &ReplayArgs, subscriptions: &[Subscription]) -> anyhow::Result<Vec<Source>> {
    let streams: Vec<&str> = subscriptions.iter().map(|s| s.stream).collect();
    let start = match (&args.from, &args.stream) {
        (From { from_start: true, .. }, _) => StartAt::Beginning,
        (From { since: Some(time), .. }, _) => StartAt::Time(*time),
        (From { from_seq: Some(_), .. }, None) if streams.len() > 1 => {
            bail!(
                "{} reads {}: say which stream the sequence is in with --stream",
                args.consumer,
                streams.join(" and ")
            )
        }
        (From { from_seq: Some(seq), .. }, _) => StartAt::Sequence(*seq),
        _ => bail!("say where to start: --from-start, --since or --from-seq"),
    };
    if let Some(wanted) = &args.stream
        && !streams.contains(&wanted.as_str())
    {
        bail!("{} does not read {wanted}; it reads {}", args.consumer, streams.join(" and "));
    }
    let chosen =
        subscriptions.iter().filter(|s| args.stream.as_ref().is_none_or(|wanted| wanted == s.stream));
    Ok(chosen.map(|&from| Source { from, start }).collect())
}

/// One progress bar per stream.
#[derive(Default)]
struct Bars {
    bars: std::sync::Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    fn show(&self, stream: &str, progress: ReplayProgress) {
        let mut bars = self.bars.lock().expect("the bars lock");
        let bar = bars.entry(stream.to_owned()).or_insert_with(|| {
            let bar = ProgressBar::new(progress.total);
            bar.set_style(
                ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(stream.to_owned());
            bar
        });
        bar.set_length(progress.total.max(progress.read));
        bar.set_position(progress.read);
    }

    fn finish(&self) {
        for bar in self.bars.lock().expect("the bars lock").values() {
            bar.finish();
        }
    }
}
