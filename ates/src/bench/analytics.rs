//! Analytics over a year of synthetic history: the rebuild (replay) rate, and the latency of
//! every dashboard endpoint.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ates_analytics::AnalyticsService;
use ates_auth::AuthService;
use ates_messaging::projection;
use ates_schemas::Envelope;
use ates_schemas::events::{TaskAddedV2, TaskCompletedV1, TransactionAppliedV1, TransactionKind};
use chrono::{Duration as Days, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::tokens::percentile;
use super::{grouped, machine, per_second};

#[derive(Args)]
pub struct AnalyticsArgs {
    /// Days of history.
    #[arg(long, default_value_t = 365)]
    days: i64,
    /// Tasks assigned per day (each with its fee; about 70% completed).
    #[arg(long, default_value_t = 300)]
    tasks_per_day: usize,
    /// Requests per endpoint.
    #[arg(long, default_value_t = 200)]
    requests: usize,
}

pub async fn run(args: AnalyticsArgs) -> anyhow::Result<()> {
    let servers = super::Servers::start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = servers.system_config(&base)?;
    let auth = AuthService::build(&config.auth()?).await?;
    let analytics = AnalyticsService::build(&config.analytics()?).await?;
    super::provision(
        &analytics.backbone,
        &[ates_messaging::streams::TASKS, ates_messaging::streams::ACCOUNTING],
    )
    .await?;
    let app = ates_web::app(
        auth.router.clone().merge(analytics.router.clone()),
        analytics.openapi.clone(),
        &ates_schemas::asyncapi::of_service(ates_analytics::BUS.user),
        analytics.readiness(),
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(ates_web::serve(listener, app, shutdown.clone()));

    println!("aTES analytics benchmark, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"));
    println!("machine: {}", machine::describe());
    let history = history(args.days, args.tasks_per_day);
    println!(
        "history: {} days, {} events (task titles and accounting transactions); PostgreSQL with fsync on\n",
        args.days,
        grouped(history.len() as u64)
    );
    let js = &analytics.backbone.js;
    super::accounting::publish(js, &history).await?;

    let started = Instant::now();
    let report = projection::rebuild(
        js,
        &analytics.backbone.pool,
        Arc::new(analytics.dashboards),
        &ates_analytics::SOURCES,
        |_, _| {},
    )
    .await
    .map_err(anyhow::Error::from_boxed)?;
    let read: u64 = report.streams.iter().map(|(_, p)| p.read).sum();
    let rate = per_second(usize::try_from(read)?, started.elapsed());
    println!(
        "{:<44} {:>10} events/s ({} events, into generation {})",
        "rebuild from the start (replay + swap)",
        grouped(rate),
        grouped(read),
        report.generation
    );

    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({ "email": super::BENCH_ADMIN.0, "password": super::BENCH_ADMIN.1 }))
        .send()
        .await?
        .json()
        .await?;
    let token = token["access_token"].as_str().unwrap_or_default().to_owned();
    let today = Utc::now().date_naive();
    let year_ago = today - Days::days(args.days - 1);
    let endpoints = [
        ("summary (today)".to_owned(), "/api/analytics/summary".to_owned()),
        ("most expensive task: day".to_owned(), "/api/analytics/most-expensive-task?period=day".to_owned()),
        ("most expensive task: week".to_owned(), "/api/analytics/most-expensive-task?period=week".to_owned()),
        (
            "most expensive task: month".to_owned(),
            "/api/analytics/most-expensive-task?period=month".to_owned(),
        ),
        (
            "most expensive task: the year".to_owned(),
            format!("/api/analytics/most-expensive-task?from={year_ago}&to={today}"),
        ),
        ("days: the whole year".to_owned(), format!("/api/analytics/days?from={year_ago}&to={today}")),
    ];
    for (name, path) in endpoints {
        let mut latencies = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            let sent = Instant::now();
            let response = client.get(format!("{base}{path}")).bearer_auth(&token).send().await?;
            anyhow::ensure!(response.status().is_success(), "{path}: {}", response.status());
            response.bytes().await?;
            latencies.push(sent.elapsed());
        }
        latencies.sort();
        println!(
            "{:<44} p50 {:>8.2?}   p99 {:>8.2?}",
            format!("GET {name}"),
            percentile(&latencies, 50),
            percentile(&latencies, 99)
        );
    }
    shutdown.cancel();
    Ok(())
}

/// `days` of history ending today: for each day, `tasks_per_day` tasks assigned (a fee each),
/// about 70% completed (a reward), and the positive balances paid out at the end of the day.
fn history(days: i64, tasks_per_day: usize) -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(2026);
    let accounts: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
    let mut balances: HashMap<Uuid, i64> = HashMap::new();
    let mut out = Vec::new();
    let today = Utc::now().date_naive();
    for day in (today - Days::days(days - 1)).iter_days().take_while(|d| *d <= today) {
        for _ in 0..tasks_per_day {
            let (task, account) = (Uuid::new_v4(), accounts[rng.random_range(0..accounts.len())]);
            let added = TaskAddedV2 {
                task_id: task,
                title: "Synthetic task".into(),
                jira_id: None,
                description: String::new(),
                created_by: account,
            };
            out.push((
                "tasks.added.v2".to_owned(),
                serde_json::to_vec(&Envelope::new("task-tracker", added)).expect("serializes"),
            ));
            let mut post = |kind, amount: i64, task: Option<Uuid>, account: Uuid| {
                let balance = balances.entry(account).or_default();
                *balance += amount;
                let data = TransactionAppliedV1 {
                    transaction_id: Uuid::new_v4(),
                    account_id: account,
                    kind,
                    amount,
                    balance_after: *balance,
                    task_id: task,
                    billing_date: day,
                };
                out.push((
                    "accounting.transaction_applied.v1".to_owned(),
                    serde_json::to_vec(&Envelope::new("accounting", data)).expect("serializes"),
                ));
            };
            post(TransactionKind::AssignFee, -rng.random_range(1000..=2000), Some(task), account);
            if rng.random_bool(0.7) {
                post(TransactionKind::CompletionReward, rng.random_range(2000..=4000), Some(task), account);
                // The most expensive task of a day is the one completed that day.
                let noon = day.and_hms_opt(12, 0, 0).expect("a time").and_utc();
                let done = TaskCompletedV1 { task_id: task, assignee_id: account };
                out.push((
                    "tasks.completed.v1".to_owned(),
                    serde_json::to_vec(&Envelope::at("task-tracker", noon, done)).expect("serializes"),
                ));
            }
        }
        let paid: Vec<(Uuid, i64)> =
            balances.iter().filter(|(_, b)| **b > 0).map(|(a, b)| (*a, *b)).collect();
        for (account, balance) in paid {
            balances.insert(account, 0);
            let data = TransactionAppliedV1 {
                transaction_id: Uuid::new_v4(),
                account_id: account,
                kind: TransactionKind::Payout,
                amount: -balance,
                balance_after: 0,
                task_id: None,
                billing_date: day,
            };
            out.push((
                "accounting.transaction_applied.v1".to_owned(),
                serde_json::to_vec(&Envelope::new("accounting", data)).expect("serializes"),
            ));
        }
    }
    out
}
