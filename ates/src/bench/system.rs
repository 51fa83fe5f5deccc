//! The whole system in its deployment shape under an open-loop load: each service its own
//! process, the load generator another (`ates bench load`, spawned by this one), then a
//! backlog drained by the accounting process.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ates_devservers::Program;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::tokens::percentile;
use super::{grouped, machine, per_second};

#[derive(Args)]
pub struct SystemArgs {
    /// Task creations offered per second, whatever the answers take (open loop).
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// How long the load is offered.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Every Nth created task is completed by its assignee.
    #[arg(long, default_value_t = 4)]
    complete_every: u64,
    /// For every Nth completion, how soon its reward shows in the assignee's account is
    /// measured (each probe polls the account's statement every 10 ms, which is load too).
    #[arg(long, default_value_t = 10)]
    probe_every: u64,
    /// How often the admin shuffles every open task (0s: never).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    shuffle_every: Duration,
    /// Workers the tasks are assigned to.
    #[arg(long, default_value_t = 100)]
    workers: usize,
    /// Task events in the backlog accounting drains afterwards (0: none).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// Also print every figure as one JSON object on the last line.
    #[arg(long)]
    json: bool,
    /// Printed for the load and for the drain apart.
    #[command(flatten)]
    statements: super::Statements,
    #[command(flatten)]
    postgres: super::PostgresSettings,
    /// An environment variable (`NAME=VALUE`) every service process gets on top of the usual
    /// ones, to measure a service setting; may be given more than once.
    #[arg(long = "service-setting", value_name = "NAME=VALUE", value_parser = super::service_setting)]
    service_settings: Vec<(String, String)>,
}

/// What the load generator is told: where the services are and who to be.
#[derive(Serialize, Deserialize)]
pub struct LoadPlan {
    tracker: String,
    accounting: String,
    admin: String,
    /// Each worker's account id and token.
    workers: HashMap<Uuid, String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// The plan `ates bench system` wrote.
    #[arg(long)]
    plan: PathBuf,
    #[arg(long)]
    rate: u32,
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Duration,
    #[arg(long)]
    complete_every: u64,
    #[arg(long)]
    probe_every: u64,
    #[arg(long, value_parser = humantime::parse_duration)]
    shuffle_every: Duration,
}

/// What the load generator measured, printed as JSON on its last line.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LoadReport {
    offered: u64,
    created: u64,
    failed: u64,
    create_per_s: u64,
    create_p50_ms: f64,
    create_p99_ms: f64,
    completed: u64,
    /// Completions whose freshness was measured.
    probes: u64,
    freshness_p50_ms: f64,
    freshness_p99_ms: f64,
    /// Rewards not visible within 30 s.
    freshness_timeouts: u64,
    shuffles: u64,
}

const SERVICES: [(&str, &str); 4] = [
    ("ates-auth", "auth"),
    ("ates-task-tracker", "task_tracker"),
    ("ates-accounting", "accounting"),
    ("ates-analytics", "analytics"),
];

/// One service process and where it listens.
struct Service {
    binary: &'static str,
    program: Program,
    url: String,
}

pub async fn run(args: SystemArgs) -> anyhow::Result<()> {
    let servers = super::Servers::start_with(args.statements, &args.postgres).await?;
    let database = servers.postgres.url("postgres");
    let pool = ates_messaging::db::connect(&database, "bench", 32)?;
    sqlx::raw_sql(
        "CREATE SCHEMA IF NOT EXISTS bench;
         CREATE TABLE bench.raw_insert (event_id uuid PRIMARY KEY, subject text NOT NULL, payload bytea NOT NULL);
         CREATE TABLE bench.raw_commit (id uuid PRIMARY KEY);",
    )
    .execute(&pool)
    .await?;

    println!("aTES system benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}", machine::describe());
    println!(
        "each service its own process, the load generator another; one nats-server, PostgreSQL with fsync on"
    );
    for (name, value) in &args.service_settings {
        println!("every service with {name}={value}");
    }
    println!();
    let raw_insert = super::backbone::raw_postgres_insert(&pool, 100_000, &[0; 350]).await?;
    let raw_commit = small_commits(&pool, 32, Duration::from_secs(3)).await?;
    println!("{:<44} {:>10} rows/s", "raw PostgreSQL batched insert", grouped(raw_insert));
    println!(
        "{:<44} {:>10} tx/s (32 connections, one row each)",
        "raw PostgreSQL small commits",
        grouped(raw_commit)
    );

    let mut services = start_services(&servers, &database, &args.service_settings).await?;
    let plan = prepare(&services, args.workers).await?;
    let plan_file = servers.dir().join("plan.json");
    std::fs::write(&plan_file, serde_json::to_vec(&plan)?)?;

    eprintln!("offering {} task creations/s for {:?}…", args.rate, args.duration);
    let processes = measured(&servers, &services);
    let before = cpu_ticks(&processes);
    args.statements.reset(&pool).await?;
    let wal = super::Wal::now(&pool).await?;
    let load = load_generator(&plan_file, &args).await?;
    let load_cpu = cpu_used(&processes, &before);
    let load_wal = super::Wal::now(&pool).await?.since(wal, load.created, "task created");
    let rss: Vec<(&str, u64)> = services.iter().map(|s| (s.binary, peak_rss_mib(&s.program))).collect();
    println!(
        "{:<44} {:>10} req/s   p50 {:.1} ms, p99 {:.1} ms ({} offered/s, {} created, {} failed)",
        "POST /api/tasks",
        grouped(load.create_per_s),
        load.create_p50_ms,
        load.create_p99_ms,
        args.rate,
        grouped(load.created),
        grouped(load.failed)
    );
    println!(
        "{:<44} p50 {:.1} ms, p99 {:.1} ms ({} completions, {} measured, {} not visible within 30 s, {} shuffles)",
        "freshness: completed -> reward visible",
        load.freshness_p50_ms,
        load.freshness_p99_ms,
        grouped(load.completed),
        grouped(load.probes),
        load.freshness_timeouts,
        load.shuffles
    );
    let legs = completion_legs(&pool).await?;
    println!(
        "{:<44} relay p50 {:.1} ms, p99 {:.1} ms; accounting p50 {:.1} ms, p99 {:.1} ms",
        "  where a completion's time goes",
        legs.relay_p50_ms,
        legs.relay_p99_ms,
        legs.posting_p50_ms,
        legs.posting_p99_ms
    );
    println!("{:<44} {} (of {:?} × {} cores)", "CPU used during the load", load_cpu, args.duration, cores());
    println!("{:<44} {}", "WAL written during the load", load_wal);
    let rss_text: Vec<String> = rss.iter().map(|(name, mib)| format!("{name} {mib} MiB")).collect();
    println!("{:<44} {}", "peak resident memory", rss_text.join(", "));
    args.statements.print(&pool).await?;

    let drain = if args.backlog > 0 {
        Some(drain_backlog(&servers, &mut services, args.backlog, args.statements).await?)
    } else {
        None
    };
    if let Some(drain) = &drain {
        println!(
            "{:<44} {:>10} events/s   {:.1} s for {} events",
            "accounting drains a backlog",
            grouped(drain.rate),
            drain.elapsed.as_secs_f64(),
            grouped(drain.events)
        );
        println!(
            "{:<44} {} (of {:.0?} × {} cores)",
            "CPU used during the drain",
            drain.cpu,
            drain.elapsed,
            cores()
        );
        println!("{:<44} {}", "WAL written during the drain", drain.wal);
        args.statements.print(&pool).await?;
    }
    let accounting = ates_messaging::db::connect(&database, "accounting", 2)?;
    let report = ates_accounting::invariants::check(&accounting, Duration::from_secs(3600)).await?;
    println!(
        "{:<44} {}",
        "ledger invariants afterwards",
        if report.ok { "hold".to_owned() } else { report.problems.join("; ") }
    );
    if args.json {
        let rss: serde_json::Map<String, Value> =
            rss.iter().map(|(name, mib)| ((*name).to_owned(), json!(mib))).collect();
        let settings: serde_json::Map<String, Value> =
            args.service_settings.iter().map(|(name, value)| (name.clone(), json!(value))).collect();
        let figures = json!({
            "offered_tasks_per_s": args.rate,
            "create_per_s": load.create_per_s,
            "create_p50_ms": load.create_p50_ms,
            "create_p99_ms": load.create_p99_ms,
            "freshness_p50_ms": load.freshness_p50_ms,
            "freshness_p99_ms": load.freshness_p99_ms,
            "rss_mib": rss,
            "accounting_drain_events_per_s": drain.as_ref().map(|d| d.rate),
            "backlog_events": args.backlog,
            "backlog_1m_drain_s": drain.as_ref().map(|d| d.elapsed.as_secs_f64()),
            "raw_insert_rows_per_s": raw_insert,
            "raw_commit_tx_per_s": raw_commit,
            "invariants_hold": report.ok,
            "wal_load": load_wal.json(),
            "wal_drain": drain.as_ref().map(|d| d.wal.json()),
            "service_settings": settings,
        });
        println!("{figures}");
    }
    for service in &mut services {
        service.program.stop(Duration::from_secs(10)).await?;
    }
    Ok(())
}

/// The two legs of every completion's way to the ledger, from the databases: the task tracker's
/// relay (committed to the outbox → acknowledged by JetStream and marked) and accounting (marked
/// → its reward's posting transaction began; it can begin before the mark, which counts as 0).
#[derive(sqlx::FromRow)]
struct CompletionLegs {
    relay_p50_ms: f64,
    relay_p99_ms: f64,
    posting_p50_ms: f64,
    posting_p99_ms: f64,
}

async fn completion_legs(pool: &PgPool) -> anyhow::Result<CompletionLegs> {
    Ok(sqlx::query_as(
        "WITH legs AS (
             SELECT EXTRACT(EPOCH FROM o.published_at - o.created_at) * 1000 AS relay,
                    GREATEST(EXTRACT(EPOCH FROM t.created_at - o.published_at) * 1000, 0) AS posting
             FROM task_tracker.outbox o
             JOIN accounting.transactions t ON t.cause_event_id = o.event_id
             WHERE o.subject LIKE 'tasks.completed.%'
         )
         SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY relay), 0)::float8 AS relay_p50_ms,
                coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY relay), 0)::float8 AS relay_p99_ms,
                coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY posting), 0)::float8 AS posting_p50_ms,
                coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY posting), 0)::float8 AS posting_p99_ms
         FROM legs",
    )
    .fetch_one(pool)
    .await?)
}

/// Autocommitted one-row inserts from `connections` connections at once for `time`.
async fn small_commits(pool: &PgPool, connections: usize, time: Duration) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let pool = pool.clone();
        writers.spawn(async move {
            let mut done = 0;
            while started.elapsed() < time {
                sqlx::query("INSERT INTO bench.raw_commit VALUES ($1)")
                    .bind(Uuid::now_v7())
                    .execute(&pool)
                    .await?;
                done += 1;
            }
            Ok::<usize, sqlx::Error>(done)
        });
    }
    let mut total = 0;
    while let Some(done) = writers.join_next().await {
        total += done??;
    }
    Ok(per_second(total, started.elapsed()))
}

/// The service binaries next to this one (`cargo build --release --bins`).
fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.with_file_name(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: build the service binaries first (cargo build --release --bins)",
        path.display()
    );
    Ok(path)
}

/// Starts every service, each with the usual environment and `settings` on top (which win).
async fn start_services(
    servers: &super::Servers,
    database: &str,
    settings: &[(String, String)],
) -> anyhow::Result<Vec<Service>> {
    let mut services = Vec::new();
    let auth_port = ates_devservers::free_port()?;
    for (index, (name, _)) in SERVICES.iter().enumerate() {
        let port = if index == 0 { auth_port } else { ates_devservers::free_port()? };
        let max = u32::MAX.to_string();
        let mut env: Vec<(String, String)> = [
            ("DATABASE_URL", database.to_owned()),
            ("NATS_URL", servers.nats.url()),
            ("ATES_HTTP", format!("127.0.0.1:{port}")),
            ("ATES_JWKS_URL", format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json")),
            ("ATES_ADMIN_EMAIL", super::BENCH_ADMIN.0.to_owned()),
            ("ATES_ADMIN_PASSWORD", super::BENCH_ADMIN.1.to_owned()),
            ("ATES_LOGIN_ATTEMPTS_PER_ACCOUNT", max.clone()),
            ("ATES_LOGIN_ATTEMPTS_PER_ADDRESS", max),
            ("ATES_MAIL_DIR", servers.dir().join("mail").display().to_string()),
            ("RUST_LOG", "warn".to_owned()),
        ]
        .map(|(name, value)| (name.to_owned(), value))
        .into();
        env.extend_from_slice(settings);
        let path = binary(name)?;
        let log = servers.dir().join(format!("{name}.log"));
        let program = Program::start(name, &log, move || {
            let mut command = Command::new(&path);
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
            command
        })?;
        let url = format!("http://127.0.0.1:{port}");
        let mut service = Service { binary: name, program, url };
        ready(&mut service).await?;
        services.push(service);
    }
    Ok(services)
}

async fn ready(service: &mut Service) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..600 {
        if client.get(format!("{}/readyz", service.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        service.program.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{} is not ready after 60 s; see {}", service.binary, service.program.log().display())
}

/// `count` workers, signed in, that the task tracker knows of.
async fn prepare(services: &[Service], count: usize) -> anyhow::Result<LoadPlan> {
    let (auth, tracker, accounting) = (&services[0].url, &services[1].url, &services[2].url);
    let client = reqwest::Client::new();
    let admin = super::tasks::login(&client, auth, super::BENCH_ADMIN.0, super::BENCH_ADMIN.1).await?;
    let mut workers = HashMap::new();
    for (n, id) in super::tasks::create_workers(&client, auth, &admin, count).await?.into_iter().enumerate() {
        let email = format!("worker{n}@ates.test");
        workers.insert(id, super::tasks::login(&client, auth, &email, super::tasks::WORKER_PASSWORD).await?);
    }
    super::tasks::wait_until_assignable(&client, tracker, &admin).await?;
    Ok(LoadPlan { tracker: tracker.clone(), accounting: accounting.clone(), admin, workers })
}

/// Runs `ates bench load` as a process of its own and reads its report.
async fn load_generator(plan: &Path, args: &SystemArgs) -> anyhow::Result<LoadReport> {
    let mut command = tokio::process::Command::new(std::env::current_exe()?);
    command
        .args(["bench", "load", "--plan"])
        .arg(plan)
        .args([
            "--rate",
            &args.rate.to_string(),
            "--duration",
            &humantime::format_duration(args.duration).to_string(),
        ])
        .args(["--complete-every", &args.complete_every.to_string()])
        .args(["--probe-every", &args.probe_every.to_string()])
        .args(["--shuffle-every", &humantime::format_duration(args.shuffle_every).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = command.output().await?;
    anyhow::ensure!(output.status.success(), "the load generator failed: {}", output.status);
    let printed = String::from_utf8(output.stdout)?;
    let last = printed.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last)?)
}

/// A process whose CPU time is reported, with everything it started: each service, PostgreSQL
/// (the postmaster and its backends) and nats-server.
struct Measured {
    name: &'static str,
    pid: Option<u32>,
}

fn measured(servers: &super::Servers, services: &[Service]) -> Vec<Measured> {
    let mut all: Vec<Measured> =
        services.iter().map(|s| Measured { name: s.binary, pid: s.program.pid() }).collect();
    all.push(Measured { name: "postgres", pid: servers.postgres.pid() });
    all.push(Measured { name: "nats-server", pid: servers.nats.pid() });
    all
}

/// CPU time (user and system, in clock ticks) each of `processes` and its descendants used so
/// far, counting descendants that ended (and were waited for) too.
fn cpu_ticks(processes: &[Measured]) -> Vec<u64> {
    // pid → (parent, ticks) of every process now running.
    let mut table: HashMap<u32, (u32, u64)> = HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // After the parenthesised command name: state, ppid, …; utime, stime, cutime and
        // cstime are fields 14 to 17 of the whole line.
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<u64> = rest.split_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
        let parent = fields.first().copied().and_then(|p| u32::try_from(p).ok()).unwrap_or(0);
        table.insert(pid, (parent, fields.iter().skip(10).take(4).sum()));
    }
    let descends_from = |mut pid: u32, root: u32| loop {
        if pid == root {
            return true;
        }
        match table.get(&pid) {
            Some((parent, _)) if *parent != 0 && *parent != pid => pid = *parent,
            _ => return false,
        }
    };
    processes
        .iter()
        .map(|p| {
            let Some(root) = p.pid else { return 0 };
            table.iter().filter(|(pid, _)| descends_from(**pid, root)).map(|(_, (_, ticks))| ticks).sum()
        })
        .collect()
}

/// "ates-auth 0.4 s, ates-task-tracker 21.0 s, …": CPU each used since `before`.
fn cpu_used(processes: &[Measured], before: &[u64]) -> String {
    // /proc reports clock ticks of USER_HZ, which is 100 on Linux.
    let per_second = 100;
    let now = cpu_ticks(processes);
    let used: Vec<String> = processes
        .iter()
        .zip(now.iter().zip(before))
        .map(|(p, (now, before))| {
            let tenths = now.saturating_sub(*before) * 10 / per_second;
            format!("{} {}.{} s", p.name, tenths / 10, tenths % 10)
        })
        .collect();
    used.join(", ")
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The peak resident memory of `program` so far (VmHWM), in MiB.
fn peak_rss_mib(program: &Program) -> u64 {
    let status = program.pid().and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok());
    let kib: u64 = status
        .as_deref()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmHWM:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    kib.div_ceil(1024)
}

/// A drained backlog: how many events, how long it took, the rate and the CPU each process used.
struct Drain {
    events: u64,
    elapsed: Duration,
    rate: u64,
    cpu: String,
    /// What PostgreSQL wrote to its WAL meanwhile.
    wal: super::WalWritten,
}

/// Stops accounting, publishes `events` task events, starts it again and times how long it
/// takes to apply them all, with progress on stderr. Progress is read from NATS (what the
/// consumer has acknowledged, which it does after committing), not from the database being
/// measured; the count of applied events is checked once at the end.
async fn drain_backlog(
    servers: &super::Servers,
    services: &mut [Service],
    events: usize,
    statements: super::Statements,
) -> anyhow::Result<Drain> {
    use super::accounting::{applied, unacknowledged};
    services[2].program.stop(Duration::from_secs(30)).await?;
    let pool = ates_messaging::db::connect(&servers.postgres.url("postgres"), "accounting", 2)?;
    let before = applied(&pool).await?;
    let client = ates_messaging::nats::connect(&servers.nats.url(), "ates-bench", None)
        .await
        .map_err(anyhow::Error::from_boxed)?;
    let js = ates_messaging::nats::jetstream(client, Duration::from_secs(30));
    eprintln!("publishing a backlog of {} task events…", grouped(events as u64));
    super::accounting::publish(&js, &super::accounting::backlog(events, 200)).await?;
    // The backlog, and whatever of the load was not acknowledged yet when accounting stopped.
    let total = unacknowledged(&js).await?;
    statements.reset(&pool).await?;
    let wal = super::Wal::now(&pool).await?;
    let started = Instant::now();
    services[2].program.restart()?;
    let processes = measured(servers, services);
    let cpu_before = cpu_ticks(&processes);
    loop {
        let remaining = unacknowledged(&js).await?;
        let drained = total.saturating_sub(remaining);
        eprint!(
            "\rdraining: {} / {} ({}%), {} events/s   ",
            grouped(drained),
            grouped(total),
            drained * 100 / total.max(1),
            grouped(per_second(usize::try_from(drained)?, started.elapsed()))
        );
        let _ = std::io::stderr().flush();
        if remaining == 0 {
            eprintln!();
            let elapsed = started.elapsed();
            let cpu = cpu_used(&processes, &cpu_before);
            let recorded = applied(&pool).await? - before;
            anyhow::ensure!(
                recorded >= i64::try_from(events)?,
                "accounting acknowledged the backlog but recorded only {recorded} of {events} events as applied"
            );
            let rate = per_second(usize::try_from(total)?, elapsed);
            let wal = super::Wal::now(&pool).await?.since(wal, total, "event");
            return Ok(Drain { events: total, elapsed, rate, cpu, wal });
        }
        services[2].program.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `ates bench load`: the open-loop load generator.
#[allow(clippy::float_arithmetic, reason = "latency figures in milliseconds, not money")]
pub async fn load(args: LoadArgs) -> anyhow::Result<()> {
    let plan: LoadPlan = serde_json::from_slice(&std::fs::read(&args.plan)?)?;
    let plan = Arc::new(plan);
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let report = Arc::new(Mutex::new(Samples::default()));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    let mut offered = 0u64;
    let mut next_shuffle = match args.shuffle_every.is_zero() {
        true => Duration::MAX,
        false => args.shuffle_every,
    };
    while started.elapsed() < args.duration {
        let due = ticks.tick().await;
        offered += 1;
        let every = args.complete_every.max(1);
        let then = match offered.is_multiple_of(every) {
            false => Then::Nothing,
            true if (offered / every).is_multiple_of(args.probe_every.max(1)) => Then::CompleteAndProbe,
            true => Then::Complete,
        };
        let (c, p, r) = (client.clone(), plan.clone(), report.clone());
        requests.spawn(async move { one_task(&c, &p, &r, due.into_std(), then).await });
        if started.elapsed() >= next_shuffle {
            next_shuffle += args.shuffle_every;
            let (c, p, r) = (client.clone(), plan.clone(), report.clone());
            requests.spawn(async move {
                let shuffled =
                    c.post(format!("{}/api/tasks/shuffle", p.tracker)).bearer_auth(&p.admin).send().await;
                if shuffled.is_ok_and(|response| response.status().is_success()) {
                    r.lock().await.shuffles += 1;
                }
            });
        }
    }
    let elapsed = started.elapsed();
    while requests.join_next().await.is_some() {}
    let mut samples = std::mem::take(&mut *report.lock().await);
    samples.creates.sort();
    samples.freshness.sort();
    let ms = |sorted: &[Duration], p| {
        if sorted.is_empty() { 0.0 } else { percentile(sorted, p).as_secs_f64() * 1000.0 }
    };
    let out = LoadReport {
        offered,
        created: samples.creates.len() as u64,
        failed: samples.failed,
        create_per_s: per_second(samples.creates.len(), elapsed),
        create_p50_ms: ms(&samples.creates, 50),
        create_p99_ms: ms(&samples.creates, 99),
        completed: samples.completed,
        probes: samples.freshness.len() as u64 + samples.timeouts,
        freshness_p50_ms: ms(&samples.freshness, 50),
        freshness_p99_ms: ms(&samples.freshness, 99),
        freshness_timeouts: samples.timeouts,
        shuffles: samples.shuffles,
    };
    #[allow(clippy::print_stdout, reason = "the report goes to the parent on stdout")]
    {
        println!("{}", serde_json::to_string(&out)?);
    }
    Ok(())
}

#[derive(Default)]
struct Samples {
    creates: Vec<Duration>,
    completed: u64,
    failed: u64,
    freshness: Vec<Duration>,
    timeouts: u64,
    shuffles: u64,
}

/// What happens to a created task.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    Complete,
    CompleteAndProbe,
}

/// Creates one task (latency from when it was due), and if `complete`, completes it as its
/// assignee and measures how long until the reward shows in the assignee's account.
async fn one_task(
    client: &reqwest::Client,
    plan: &LoadPlan,
    report: &Mutex<Samples>,
    due: Instant,
    then: Then,
) {
    let any_worker = plan.workers.values().next().expect("workers");
    let created = client
        .post(format!("{}/api/tasks", plan.tracker))
        .bearer_auth(any_worker)
        .json(&json!({ "title": "Benchmark task", "jira_id": "POP-1" }))
        .send()
        .await;
    let task: Option<Value> = match created {
        Ok(response) if response.status().as_u16() == 201 => response.json().await.ok(),
        _ => None,
    };
    let Some(task) = task else {
        report.lock().await.failed += 1;
        return;
    };
    report.lock().await.creates.push(due.elapsed());
    if then == Then::Nothing {
        return;
    }
    let (Some(task_id), Some(assignee)) =
        (task["task_id"].as_str(), task["assignee_id"].as_str().and_then(|a| a.parse::<Uuid>().ok()))
    else {
        return;
    };
    let Some(token) = plan.workers.get(&assignee) else { return };
    let done =
        client.post(format!("{}/api/tasks/{task_id}/complete", plan.tracker)).bearer_auth(token).send().await;
    if !done.is_ok_and(|r| r.status().is_success()) {
        return;
    }
    report.lock().await.completed += 1;
    if then != Then::CompleteAndProbe {
        return;
    }
    let answered = Instant::now();
    let url = format!("{}/api/accounting/accounts/{assignee}", plan.accounting);
    while answered.elapsed() < Duration::from_secs(30) {
        let statement: Option<Value> = match client.get(&url).bearer_auth(&plan.admin).send().await {
            Ok(response) => response.json().await.ok(),
            Err(_) => None,
        };
        let rewarded =
            statement.as_ref().and_then(|s| s["transactions"].as_array()).is_some_and(|transactions| {
                transactions.iter().any(|t| t["task_id"] == task_id && t["kind"] == "completion_reward")
            });
        if rewarded {
            report.lock().await.freshness.push(answered.elapsed());
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    report.lock().await.timeouts += 1;
}
