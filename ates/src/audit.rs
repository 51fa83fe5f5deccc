//! `ates audit`: did every event reach every service, and does the money match the work?
//!
//! For every producer's event log (its published outbox rows since `--since`) and every durable
//! consumer of that producer's stream, each event must be recorded as applied by the consumer or
//! parked on its DLQ subject. Then every `tasks.assigned` must have exactly one fee in the ledger
//! and every `tasks.completed` exactly one reward. Events younger than the grace period are in
//! flight, not missing.

use std::collections::HashSet;
use std::io::Write as _;
use std::time::Duration;

use async_nats::jetstream;
use ates_accounting::consumers::tasks;
use ates_messaging::dlq::Dlq;
use ates_messaging::event_log::{self, Published};
use ates_messaging::permissions::Subscription;
use ates_messaging::{NatsConnection, db};
use ates_schemas::events::TransactionKind;
use chrono::{DateTime, Utc};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::credentials::{ACCOUNTING, SERVICES, Service, TASK_TRACKER};

/// Ids looked up per query.
const CHUNK: usize = 10_000;

#[derive(Args)]
pub struct AuditArgs {
    #[command(flatten)]
    nats: NatsConnection,
    /// The database of every service, as a role that can read all their schemas (the
    /// operator's `DATABASE_URL`).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: SecretString,
    /// Audit events committed since: an RFC 3339 time, or a duration ago such as `24h`.
    #[arg(long, default_value = "24h", value_parser = crate::replay::parse_time)]
    since: DateTime<Utc>,
    /// Events younger than this count as in flight, not missing.
    #[arg(long, default_value = "1m", value_parser = humantime::parse_duration)]
    grace: Duration,
}

/// One producer and one of the consumers of its stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    pub producer: &'static str,
    pub consumer: &'static str,
    /// Events in the producer's log.
    pub events: usize,
    pub applied: usize,
    pub parked: usize,
    /// Neither applied nor parked, but younger than the grace period.
    pub in_flight: usize,
    /// Neither applied nor parked, and older.
    pub missing: Vec<Uuid>,
}

/// One rule tying money to work: each event of `event` has exactly one transaction of `kind`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub event: &'static str,
    pub kind: &'static str,
    pub events: usize,
    /// With exactly one transaction.
    pub matched: usize,
    pub in_flight: usize,
    /// Without a transaction (and older than the grace period).
    pub missing: Vec<Uuid>,
    /// With more than one.
    pub doubled: Vec<Uuid>,
}

/// What the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub deliveries: Vec<Delivery>,
    pub money: Vec<Reconciliation>,
    /// Per producer, events older than the grace period still not acknowledged by JetStream.
    pub unpublished: Vec<(&'static str, i64)>,
}

impl Report {
    /// Nothing missing, nothing doubled.
    pub fn ok(&self) -> bool {
        self.deliveries.iter().all(|d| d.missing.is_empty())
            && self.money.iter().all(|m| m.missing.is_empty() && m.doubled.is_empty())
            && self.unpublished.iter().all(|(_, count)| *count == 0)
    }

    /// The tables an operator reads, and the ids of what is missing or doubled (the first 20
    /// of each).
    pub fn render(&self) -> String {
        let deliveries: Vec<Vec<String>> = self
            .deliveries
            .iter()
            .map(|d| {
                let counts = [d.events, d.applied, d.parked, d.in_flight, d.missing.len()];
                [d.producer.to_owned(), d.consumer.to_owned()]
                    .into_iter()
                    .chain(counts.map(|n| n.to_string()))
                    .collect()
            })
            .collect();
        let money: Vec<Vec<String>> = self
            .money
            .iter()
            .map(|m| {
                let counts = [m.events, m.matched, m.in_flight, m.missing.len(), m.doubled.len()];
                [m.event.to_owned(), m.kind.to_owned()]
                    .into_iter()
                    .chain(counts.map(|n| n.to_string()))
                    .collect()
            })
            .collect();
        let mut out = table(
            &["producer", "consumer", "events", "applied", "parked", "in flight", "missing"],
            &deliveries,
        );
        out.push('\n');
        out.push_str(&table(
            &["event", "transaction", "events", "matched", "in flight", "missing", "doubled"],
            &money,
        ));
        let list = |what: String, ids: &[Uuid], out: &mut String| {
            if !ids.is_empty() {
                let shown: Vec<String> = ids.iter().take(20).map(Uuid::to_string).collect();
                let more = ids.len().saturating_sub(20);
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                out.push_str(&format!("\n{what}: {}{more}\n", shown.join(", ")));
            }
        };
        for (producer, count) in self.unpublished.iter().filter(|(_, count)| *count > 0) {
            out.push_str(&format!(
                "\n{producer}: {count} event(s) older than the grace period are not published yet; its relay \
                 cannot reach JetStream (see AtesOutboxStuck)\n"
            ));
        }
        for d in &self.deliveries {
            list(format!("missing at {} (events of {})", d.consumer, d.producer), &d.missing, &mut out);
        }
        for m in &self.money {
            list(format!("{} without a {}", m.event, m.kind), &m.missing, &mut out);
            list(format!("{} with more than one {}", m.event, m.kind), &m.doubled, &mut out);
        }
        out
    }
}

/// Left-aligned names, then right-aligned counts, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|column| rows.iter().map(|r| r[column].len()).chain([header[column].len()]).max().unwrap_or(0))
        .collect();
    let line = |cells: Vec<&str>| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i < 2 {
                    format!("{cell:<w$}", w = widths[i])
                } else {
                    format!("{cell:>w$}", w = widths[i])
                }
            })
            .collect();
        format!("{}\n", cells.join("  "))
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// `ates audit`: prints the report and fails (exit 1) when anything is missing or doubled.
pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let js = crate::operator_jetstream(&args.nats, "ates-audit", Duration::from_secs(10)).await?;
    let report = audit(args.database_url.expose_secret(), &js, args.since, args.grace, |progress| {
        eprint!("\r{progress}\x1b[K");
        let _ = std::io::stderr().flush();
    })
    .await?;
    eprintln!();
    #[allow(clippy::print_stdout, reason = "the report is what was asked for")]
    {
        print!("{}", report.render());
    }
    anyhow::ensure!(report.ok(), "events are missing, doubled or not published (see above)");
    eprintln!(
        "every event since {} was published and applied or parked by every consumer; every fee and reward is there once",
        args.since
    );
    Ok(())
}

/// Audits what was committed since `since` in the databases at `database_url` against the DLQ
/// reached through `js`; `progress` hears a line now and then.
pub async fn audit(
    database_url: &str,
    js: &jetstream::Context,
    since: DateTime<Utc>,
    grace: Duration,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<Report> {
    let settled_before = Utc::now() - chrono::Duration::from_std(grace)?;
    let dlq = Dlq::new(js.clone());
    let mut report = Report::default();
    let mut logs = Vec::new();
    for producer in SERVICES.iter().filter(|s| s.bus.produces.is_some()) {
        let pool = db::connect(database_url, producer.schema, 2)?;
        progress(&format!("reading the event log of {}", producer.schema));
        let log = event_log::published_since(&pool, since).await?;
        report
            .unpublished
            .push((producer.schema, event_log::unpublished(&pool, since, settled_before).await?));
        let stream = producer.bus.produces.expect("a producer");
        for (schema, subscription) in consumers_of(producer) {
            let consumer = subscription.consumer;
            // What it receives of the log: a consumer of some events only is not missing the rest.
            let log: Vec<Published> =
                log.iter().filter(|e| subscription.receives(&e.subject)).cloned().collect();
            let pool = db::connect(database_url, schema, 2)?;
            let parked = parked_events(&dlq, consumer).await?;
            let settled =
                Settled { before: settled_before, ack_floor: ack_floor(js, stream, consumer).await };
            let mut applied = HashSet::new();
            for (done, chunk) in log.chunks(CHUNK).enumerate() {
                let ids: Vec<Uuid> = chunk.iter().map(|e| e.event_id).collect();
                applied.extend(applied_by(&pool, consumer, &ids).await?);
                let checked = (done * CHUNK + chunk.len()).min(log.len());
                progress(&format!("{consumer}: {checked} of {} events of {}", log.len(), producer.schema));
            }
            report.deliveries.push(delivery(producer.schema, consumer, &log, &applied, &parked, settled));
        }
        logs.push((producer.schema, log));
    }
    let tasks = logs.iter().find(|(schema, _)| *schema == TASK_TRACKER.schema).map(|(_, log)| log);
    let ledger = db::connect(database_url, ACCOUNTING.schema, 2)?;
    for (event, kind) in [
        ("tasks.assigned", TransactionKind::AssignFee),
        ("tasks.completed", TransactionKind::CompletionReward),
    ] {
        progress(&format!("matching every {event} with its {}", kind.as_str()));
        let causes: Vec<&Published> =
            tasks.into_iter().flatten().filter(|e| event_name(&e.subject) == event).collect();
        report.money.push(reconcile(&ledger, event, kind, &causes, settled_before).await?);
    }
    Ok(report)
}

/// Every durable consumer of `producer`'s stream, with the schema of the service that runs it.
fn consumers_of(producer: &Service) -> Vec<(&'static str, Subscription)> {
    let mut consumers = Vec::new();
    for service in SERVICES {
        for subscription in service.bus.consumes {
            if Some(subscription.stream) == producer.bus.produces {
                consumers.push((service.schema, *subscription));
            }
        }
    }
    consumers
}

/// Which of `ids` `consumer` has applied: for the consumers of analytics' dashboards, what the
/// current generation of the read model holds (a rebuild replaces what the live consumer
/// recorded); for accounting's task consumers, the effects that are their own record; for every
/// other consumer, its record of processed events.
async fn applied_by(pool: &sqlx::PgPool, consumer: &str, ids: &[Uuid]) -> sqlx::Result<HashSet<Uuid>> {
    if ates_analytics::SOURCES.iter().any(|source| source.consumer == consumer) {
        event_log::projected(pool, ids).await
    } else if tasks::SUBSCRIPTIONS.iter().any(|s| s.consumer == consumer) {
        tasks::applied(pool, consumer, ids).await
    } else {
        event_log::recorded(pool, consumer, ids).await
    }
}

/// The ids of the events parked on `dlq.<consumer>`.
async fn parked_events(dlq: &Dlq, consumer: &str) -> anyhow::Result<HashSet<Uuid>> {
    let parked = dlq.list(Some(consumer)).await.map_err(anyhow::Error::from_boxed)?;
    Ok(parked
        .iter()
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(&p.payload).ok())
        .filter_map(|payload| payload["event_id"].as_str().and_then(|id| id.parse().ok()))
        .collect())
}

/// The stream sequence up to which `consumer` has acknowledged everything, while it still has
/// messages to work through (`None` when it has none, or NATS cannot say: then an event beyond
/// it is not on its way but lost).
async fn ack_floor(js: &jetstream::Context, stream: &str, consumer: &str) -> Option<i64> {
    let stream = js.get_stream_no_info(stream).await.ok()?;
    let info = stream.consumer_info(consumer).await.ok()?;
    let working = info.num_pending > 0 || info.num_ack_pending > 0;
    working.then(|| i64::try_from(info.ack_floor.stream_sequence).ok()).flatten()
}

/// When an event not applied yet is still on its way rather than missing.
#[derive(Debug, Clone, Copy)]
struct Settled {
    /// Published after this: within the grace period.
    before: DateTime<Utc>,
    /// Beyond this stream sequence the consumer has not got to yet.
    ack_floor: Option<i64>,
}

impl Settled {
    fn in_flight(&self, event: &Published) -> bool {
        event.published_at > self.before
            || matches!((event.stream_seq, self.ack_floor), (Some(seq), Some(floor)) if seq > floor)
    }
}

/// `tasks.assigned` of the subject `tasks.assigned.v1`.
fn event_name(subject: &str) -> &str {
    subject.rsplit_once('.').map_or(subject, |(name, _version)| name)
}

fn delivery(
    producer: &'static str,
    consumer: &'static str,
    log: &[Published],
    applied: &HashSet<Uuid>,
    parked: &HashSet<Uuid>,
    settled: Settled,
) -> Delivery {
    let mut delivery = Delivery { producer, consumer, events: log.len(), ..Delivery::default() };
    for event in log {
        if applied.contains(&event.event_id) {
            delivery.applied += 1;
        } else if parked.contains(&event.event_id) {
            delivery.parked += 1;
        } else if settled.in_flight(event) {
            delivery.in_flight += 1;
        } else {
            delivery.missing.push(event.event_id);
        }
    }
    delivery
}

async fn reconcile(
    ledger: &sqlx::PgPool,
    event: &'static str,
    kind: TransactionKind,
    causes: &[&Published],
    settled_before: DateTime<Utc>,
) -> anyhow::Result<Reconciliation> {
    let mut rule =
        Reconciliation { event, kind: kind.as_str(), events: causes.len(), ..Reconciliation::default() };
    for chunk in causes.chunks(CHUNK) {
        let ids: Vec<Uuid> = chunk.iter().map(|e| e.event_id).collect();
        let counts = ates_accounting::invariants::postings_caused_by(ledger, kind, &ids).await?;
        for cause in chunk {
            match counts.get(&cause.event_id).copied().unwrap_or(0) {
                1 => rule.matched += 1,
                0 if cause.published_at > settled_before => rule.in_flight += 1,
                0 => rule.missing.push(cause.event_id),
                _ => rule.doubled.push(cause.event_id),
            }
        }
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(age_secs: i64, stream_seq: i64) -> Published {
        let at = Utc::now() - chrono::Duration::seconds(age_secs);
        Published {
            event_id: Uuid::now_v7(),
            subject: "tasks.assigned.v1".into(),
            created_at: at,
            published_at: at,
            stream_seq: Some(stream_seq),
        }
    }

    #[test]
    fn an_event_is_applied_parked_in_flight_or_missing() {
        let log = [event(600, 1), event(600, 2), event(600, 3), event(1, 4), event(600, 5)];
        let applied = HashSet::from([log[0].event_id]);
        let parked = HashSet::from([log[1].event_id]);
        let settled = Settled { before: Utc::now() - chrono::Duration::seconds(60), ack_floor: Some(4) };
        let found = delivery("task_tracker", "accounting-tasks", &log, &applied, &parked, settled);
        assert_eq!((found.events, found.applied, found.parked), (5, 1, 1));
        assert_eq!(
            found.in_flight, 2,
            "published within the grace period, or beyond the consumer's ack floor"
        );
        assert_eq!(found.missing, [log[2].event_id]);
        let report = Report { deliveries: vec![found], ..Report::default() };
        assert!(!report.ok());
        assert!(report.render().contains(&log[2].event_id.to_string()), "{}", report.render());
        let stuck = Report { unpublished: vec![("task_tracker", 3)], ..Report::default() };
        assert!(!stuck.ok() && stuck.render().contains("3 event(s)"), "{}", stuck.render());
    }

    #[test]
    fn every_stream_has_its_consumers_and_subjects_name_their_event() {
        let names: Vec<&str> = consumers_of(&TASK_TRACKER).iter().map(|(_, s)| s.consumer).collect();
        assert_eq!(names, ["accounting-tasks", "accounting-completions", "analytics-tasks"]);
        assert_eq!(consumers_of(&crate::credentials::AUTH).len(), 3, "every service replicates accounts");
        assert_eq!(event_name("tasks.assigned.v1"), "tasks.assigned");
    }
}
