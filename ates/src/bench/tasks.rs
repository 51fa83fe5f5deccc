//! Task creation through HTTP with the whole system running, and a shuffle of many open tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ates::system::System;
use clap::Args;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::tokens::percentile;
use super::{grouped, machine, per_second};

#[derive(Args)]
pub struct TasksArgs {
    /// Task creations to send.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Open tasks to shuffle.
    #[arg(long, default_value_t = 100_000)]
    shuffle: usize,
    /// More assignable popugs for the draw, besides the 20 workers: written straight into the
    /// task tracker's accounts replica, as their `accounts.created` would write them.
    #[arg(long, default_value_t = 0)]
    popugs: usize,
}

pub async fn run(args: TasksArgs) -> anyhow::Result<()> {
    let servers = super::Servers::start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let system = System::build(&servers.system_config(&base)?).await?;
    let shutdown = CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    system.spawn_workers(&shutdown, &mut workers);
    tokio::spawn(ates_web::serve(listener, system.app(), shutdown.clone()));
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;

    println!("aTES task tracker benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}", machine::describe());
    println!(
        "the whole system in one process (auth, task tracker with relay and consumers), PostgreSQL with fsync on;"
    );
    println!("the load generator runs in the same process, {} requests in flight\n", args.concurrency);

    let admin = login(&client, &base, super::BENCH_ADMIN.0, super::BENCH_ADMIN.1).await?;
    let workers_ids: Vec<String> =
        create_workers(&client, &base, &admin, 20).await?.into_iter().map(|id| id.to_string()).collect();
    let worker = login(&client, &base, "worker0@ates.test", WORKER_PASSWORD).await?;
    wait_until_assignable(&client, &base, &worker).await?;
    let pool = &system.task_tracker.backbone.pool;
    sqlx::query(
        "INSERT INTO accounts (account_id, email, full_name, role, active, state_time)
         SELECT gen_random_uuid(), 'popug' || n || '@ates.test', 'Popug ' || n, 'worker', true, now()
         FROM generate_series(1, $1) AS n",
    )
    .bind(i64::try_from(args.popugs)?)
    .execute(pool)
    .await?;
    println!("{:<40} {:>10}\n", "assignable popugs", grouped(20 + args.popugs as u64));

    let (rate, p50, p99) = create_load(&client, &base, &worker, args.requests, args.concurrency).await?;
    println!(
        "{:<40} {:>10} req/s   p50 {:.1?}, p99 {:.1?} ({} requests)",
        "POST /api/tasks",
        grouped(rate),
        p50,
        p99,
        grouped(args.requests as u64)
    );

    sqlx::query(
        "INSERT INTO tasks (task_id, title, assignee_id, created_by)
         SELECT gen_random_uuid(), 'Bulk task ' || n, $2, $2 FROM generate_series(1, $1) AS n",
    )
    .bind(i64::try_from(args.shuffle)?)
    .bind(uuid::Uuid::parse_str(&workers_ids[0])?)
    .execute(pool)
    .await?;
    let open: i64 =
        sqlx::query_scalar("SELECT count(*) FROM tasks WHERE status = 'open'").fetch_one(pool).await?;
    let started = Instant::now();
    let shuffled: Value =
        client.post(format!("{base}/api/tasks/shuffle")).bearer_auth(&admin).send().await?.json().await?;
    let elapsed = started.elapsed();
    println!(
        "{:<40} {:>10.2?}   {} open tasks reassigned, {} outbox rows written",
        "POST /api/tasks/shuffle",
        elapsed,
        grouped(u64::try_from(open)?),
        shuffled["reassigned"]
    );
    shutdown.cancel();
    Ok(())
}

/// The password of the benchmarks' workers.
pub(super) const WORKER_PASSWORD: &str = "worker-password";

/// Creates `count` workers, `worker<n>@ates.test`, through auth at `base`; returns their ids.
pub(super) async fn create_workers(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    count: usize,
) -> anyhow::Result<Vec<uuid::Uuid>> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let body = json!({ "email": format!("worker{n}@ates.test"), "full_name": format!("Worker {n}"), "password": WORKER_PASSWORD, "role": "worker" });
        let account: Value = client
            .post(format!("{base}/api/accounts"))
            .bearer_auth(admin)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        ids.push(account["account_id"].as_str().unwrap_or_default().parse()?);
    }
    Ok(ids)
}

pub(super) async fn login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let reply: Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .json()
        .await?;
    reply["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("sign-in failed: {reply}"))
}

/// Waits until the task tracker has heard of the workers.
pub(super) async fn wait_until_assignable(
    client: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<()> {
    for _ in 0..500 {
        let response = client.get(format!("{base}/api/tasks/mine")).bearer_auth(token).send().await?;
        let created = client
            .post(format!("{base}/api/tasks"))
            .bearer_auth(token)
            .json(&json!({ "title": "warm-up" }))
            .send()
            .await?;
        if response.status().is_success() && created.status().is_success() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("the task tracker never learned about the workers")
}

async fn create_load(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    requests: usize,
    concurrency: usize,
) -> anyhow::Result<(u64, Duration, Duration)> {
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(requests));
    let started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, token, remaining) =
            (client.clone(), format!("{base}/api/tasks"), token.to_owned(), remaining.clone());
        clients.spawn(async move {
            let mut latencies = Vec::new();
            while remaining
                .fetch_update(std::sync::atomic::Ordering::SeqCst, std::sync::atomic::Ordering::SeqCst, |n| {
                    n.checked_sub(1)
                })
                .is_ok()
            {
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({ "title": "Benchmark task", "jira_id": "POP-1" }))
                    .send()
                    .await?;
                anyhow::ensure!(response.status().as_u16() == 201, "create failed: {}", response.status());
                latencies.push(sent.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(requests);
    while let Some(done) = clients.join_next().await {
        latencies.extend(done??);
    }
    let rate = per_second(requests, started.elapsed());
    latencies.sort();
    Ok((rate, percentile(&latencies, 50), percentile(&latencies, 99)))
}
