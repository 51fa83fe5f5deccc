use ates::replay::{From, ReplayArgs, run};
use ates_tests::Role;
use ates_tests::TestSystem;
use chrono::Duration;
use reqwest::StatusCode;

use super::dashboards::settled_days;
use super::history::History;

fn args(sys: &TestSystem, consumer: &str, from: From) -> ReplayArgs {
    ReplayArgs {
        consumer: consumer.into(),
        from,
        stream: None,
        database_url: sys.config.backbone.database_url().unwrap().to_owned(),
        nats: sys.operator(),
        calendar: sys.config.calendar,
    }
}

fn from_start() -> From {
    From { from_start: true, since: None, from_seq: None }
}

async fn partitions(sys: &TestSystem) -> Vec<String> {
    sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'analytics' AND tablename LIKE 'days_g%' ORDER BY 1")
        .fetch_all(&sys.system.analytics.backbone.pool)
        .await
        .unwrap()
}

/// How many events the current generation of the dashboards records as applied.
async fn applied_events(sys: &TestSystem) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM projection_applied")
        .fetch_one(&sys.system.analytics.backbone.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn replaying_from_the_start_rebuilds_the_same_dashboards_into_fresh_tables_every_time() {
    let sys = TestSystem::start_without_ledger().await;
    let admin = sys.admin_token().await;
    let history = History::generate(11, 8);
    history.publish(&sys.jetstream().await, 11).await;
    let live = settled_days(&sys, &admin, history.first, history.last).await;
    assert_eq!(partitions(&sys).await, ["days_g1"]);

    let first = run(args(&sys, "analytics", from_start())).await.unwrap();
    let after_first = settled_days(&sys, &admin, history.first, history.last).await;
    let second = run(args(&sys, "analytics", from_start())).await.unwrap();
    let after_second = settled_days(&sys, &admin, history.first, history.last).await;

    assert_eq!((first.generation, second.generation), (Some(2), Some(3)));
    assert_eq!(after_first, live, "a rebuild reproduces the dashboards");
    assert_eq!(after_second, live, "and so does a second one");
    assert_eq!(partitions(&sys).await, ["days_g3"], "the old tables are dropped");
    // A rebuild reads what the live consumers read: the assignments and prices are not its to
    // record as applied.
    let applied = applied_events(&sys).await;
    assert_eq!(applied, history.event_count());
    let read: u64 = first.streams.iter().map(|(_, p)| p.read).sum();
    assert!(
        usize::try_from(read).unwrap() >= history.transactions.len() + history.titles.len(),
        "read every event, copies included"
    );
    sys.finish().await;
}

#[tokio::test]
async fn a_rebuild_while_events_keep_arriving_loses_nothing_and_keeps_answering() {
    let sys = TestSystem::start_without_ledger().await;
    let admin = sys.admin_token().await;
    let (before, during) = (History::generate(21, 6), History::generate(22, 6));
    let js = sys.jetstream().await;
    before.publish(&js, 21).await;
    settled_days(&sys, &admin, before.first, before.last).await;

    let rebuild = tokio::spawn(run(args(&sys, "analytics", from_start())));
    let publishing = during.publish(&js, 22);
    let answering = async {
        for _ in 0..20 {
            let reply = sys.get("/api/analytics/summary", &admin).await;
            assert_eq!(reply.status, StatusCode::OK, "the dashboards keep answering during a rebuild");
        }
    };
    tokio::join!(publishing, answering);
    rebuild.await.unwrap().unwrap();

    let days = settled_days(&sys, &admin, before.first, before.last).await;
    let mut expected = History {
        transactions: before.transactions.clone(),
        titles: before.titles.clone(),
        completions: before.completions.clone(),
        accounts: before.accounts.clone(),
        first: before.first,
        last: before.last,
    };
    expected.transactions.extend(during.transactions.iter().cloned());
    expected.titles.extend(during.titles.clone());
    expected.completions.extend(during.completions.clone());
    assert_eq!(days, serde_json::Value::Array(expected.days(before.first, before.last)));
    let applied = applied_events(&sys).await;
    assert_eq!(applied, before.event_count() + during.event_count(), "no assignment or price among them");
    sys.finish().await;
}

#[tokio::test]
async fn replaying_since_a_time_or_a_sequence_adds_only_what_is_missing() {
    let sys = TestSystem::start_without_ledger().await;
    let admin = sys.admin_token().await;
    let history = History::generate(31, 5);
    history.publish(&sys.jetstream().await, 31).await;
    let live = settled_days(&sys, &admin, history.first, history.last).await;

    let since = run(args(
        &sys,
        "analytics",
        From { from_start: false, since: Some(chrono::Utc::now() - Duration::hours(1)), from_seq: None },
    ))
    .await
    .unwrap();
    let mut by_seq = args(&sys, "analytics", From { from_start: false, since: None, from_seq: Some(1) });
    by_seq.stream = Some("ACCOUNTING".into());
    let from_seq = run(by_seq).await.unwrap();

    assert!(since.streams.iter().all(|(_, p)| p.read > 0), "everything was there already: {since:?}");
    assert_eq!(from_seq.streams.len(), 1);
    assert_eq!(settled_days(&sys, &admin, history.first, history.last).await, live);

    // Lose the money part of the read model, then replay the ACCOUNTING stream back into it.
    sqlx::raw_sql("DELETE FROM projection_applied; DELETE FROM days; DELETE FROM account_days; DELETE FROM day_top_tasks")
        .execute(&sys.system.analytics.backbone.pool)
        .await
        .unwrap();
    let mut missing = args(&sys, "analytics", From { from_start: false, since: None, from_seq: Some(1) });
    missing.stream = Some("ACCOUNTING".into());
    run(missing).await.unwrap();
    assert_eq!(settled_days(&sys, &admin, history.first, history.last).await, live);
    let applied = applied_events(&sys).await;
    assert_eq!(
        usize::try_from(applied).unwrap(),
        history.transactions.len(),
        "the transactions, not the prices"
    );
    sys.finish().await;
}

#[tokio::test]
async fn an_accounts_replica_replays_in_place_and_bad_requests_say_why() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    sys.known_to_task_tracker(&[&popug]).await;
    sqlx::query("DELETE FROM accounts").execute(&sys.system.task_tracker.backbone.pool).await.unwrap();

    run(args(&sys, "task-tracker-accounts", from_start())).await.unwrap();

    sys.known_to_task_tracker(&[&popug]).await;
    let unknown = run(args(&sys, "accounting-tasks", from_start())).await.unwrap_err();
    assert!(unknown.to_string().contains("has no read model to replay"), "{unknown}");
    let ambiguous = run(args(&sys, "analytics", From { from_start: false, since: None, from_seq: Some(3) }))
        .await
        .unwrap_err();
    assert!(ambiguous.to_string().contains("--stream"), "{ambiguous}");
    sys.finish().await;
}

#[tokio::test]
async fn a_read_keeps_its_generation_while_a_rebuild_swaps_it_and_drops_the_old_tables() {
    let sys = TestSystem::start_without_ledger().await;
    let admin = sys.admin_token().await;
    let history = History::generate(41, 4);
    history.publish(&sys.jetstream().await, 41).await;
    let expected = settled_days(&sys, &admin, history.first, history.last).await;
    let pool = sys.system.analytics.backbone.pool.clone();

    let (mut read, generation) = ates_messaging::projection::read_current(&pool).await.unwrap();
    let rebuild = tokio::spawn(run(args(&sys, "analytics", from_start())));
    sys.waiting_for_lock("UPDATE projection_state").await;
    let days =
        ates_analytics::queries::days(&mut read, generation, history.first, history.last).await.unwrap();
    assert_eq!(
        serde_json::to_value(days).unwrap(),
        expected,
        "the old generation is whole until the read ends"
    );
    drop(read);

    assert_eq!(rebuild.await.unwrap().unwrap().generation, Some(generation + 1));
    assert_eq!(settled_days(&sys, &admin, history.first, history.last).await, expected);
    sys.finish().await;
}
