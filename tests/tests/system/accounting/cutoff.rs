//! Money at the cut-off: a day's payout is that day's closing balance, however late the close
//! runs, and closes that fail or make no sense.

use ates_tests::Role;
use std::sync::Mutex;
use std::time::Duration;

use ates_accounting::AccountingService;
use ates_accounting::domain::money::dollars;
use ates_schemas::DomainEvent;
use ates_testkit::{SmtpServer, TestNats, database, eventually, eventually_with};
use ates_tests::{TestSystem, captured_logs, outbox_events};
use chrono::{Duration as Span, NaiveDate, Utc};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::instrument::WithSubscriber;
use uuid::Uuid;

use super::close::{close, noon, with_smtp, work, work_of, yesterday};

fn pool(sys: &TestSystem) -> &PgPool {
    &sys.system.accounting.backbone.pool
}

/// Fee and reward of each of `tasks`, summed: (fees, rewards).
async fn priced(pool: &PgPool, tasks: &[Uuid]) -> (i64, i64) {
    sqlx::query_as(
        "SELECT coalesce(sum(assign_fee), 0)::bigint, coalesce(sum(completion_reward), 0)::bigint
         FROM tasks WHERE task_id = ANY($1)",
    )
    .bind(tasks)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_fee_billed_to_the_next_day_leaves_the_days_payout_whole_and_the_email_states_it() {
    let smtp = SmtpServer::start();
    let sys = with_smtp(&smtp).await;
    let (worker, manager) = (sys.popug(Role::Worker).await, sys.popug(Role::Manager).await);
    sys.known_to_task_tracker(&[&worker, &manager]).await;
    let mut tasks = Vec::new();
    for title in ["Sort the seeds", "Count the eggs"] {
        let task = crate::tracker::task(&sys, &manager, title).await;
        let id = task["task_id"].as_str().unwrap();
        sys.post(&format!("/api/tasks/{id}/complete"), &worker.token, json!({})).await.expect(StatusCode::OK);
        tasks.push(id.parse::<Uuid>().unwrap());
    }
    let today = Utc::now().date_naive();
    let tomorrow = today + Span::days(1);
    // One more assignment whose event time is just after tonight's midnight: tomorrow's fee.
    work(&sys, &worker, tomorrow.and_hms_opt(0, 0, 1).unwrap().and_utc(), false).await;
    sys.settled().await;
    let (fees, rewards) = priced(pool(&sys), &tasks).await;
    let earned = rewards - fees;
    let tomorrows_fee: i64 = sqlx::query_scalar(
        "SELECT -amount FROM transactions WHERE account_id = $1 AND billing_date = $2 AND kind = 'assign_fee'",
    )
    .bind(worker.id)
    .bind(tomorrow)
    .fetch_one(pool(&sys))
    .await
    .unwrap();
    assert!(earned > 0, "two completed tasks earn something: {earned}");
    let me = sys.get("/api/accounting/me", &worker.token).await.expect(StatusCode::OK);
    assert_eq!(me["balance"], earned - tomorrows_fee, "the balance holds both days");

    let closed = close(&sys, today).await;

    assert_eq!((closed["accounts_paid"].as_i64(), closed["total_paid"].as_i64()), (Some(1), Some(earned)));
    let day =
        sys.get(&format!("/api/accounting/me?date={today}"), &worker.token).await.expect(StatusCode::OK);
    let payout = day["transactions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((payout["kind"].as_str(), payout["amount"].as_i64()), (Some("payout"), Some(-earned)));
    assert_eq!(payout["balance_after"], -tomorrows_fee, "what is left is tomorrow's fee");
    assert_eq!((day["opening_balance"].as_i64(), day["closing_balance"].as_i64()), (Some(0), Some(0)));
    assert_eq!(day["balance"], -tomorrows_fee);
    let next =
        sys.get(&format!("/api/accounting/me?date={tomorrow}"), &worker.token).await.expect(StatusCode::OK);
    assert_eq!(
        (next["opening_balance"].as_i64(), next["closing_balance"].as_i64()),
        (Some(0), Some(-tomorrows_fee))
    );
    let dashboard = sys
        .get(&format!("/api/accounting/dashboard?from={today}&to={tomorrow}"), &sys.admin_token().await)
        .await
        .expect(StatusCode::OK);
    assert_eq!(dashboard[0]["payouts"], earned);
    assert_eq!(
        (dashboard[1]["payouts"].as_i64(), dashboard[1]["assign_fees"].as_i64()),
        (Some(0), Some(tomorrows_fee))
    );

    let mail = eventually("the payout email", || async { smtp.messages().pop() }).await;
    assert!(mail.contains(&format!("Your aTES payout for {today}: {}", dollars(earned))), "{mail}");
    let text = mail.split("text/html").next().unwrap();
    assert_eq!(text.matches("Fee for being assigned").count(), 2, "only today's fees: {mail}");
    assert!(text.contains("(balance $0.00)"), "the day ends at zero: {mail}");
    sys.settled().await;
    let events = outbox_events(pool(&sys)).await;
    let closes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::BillingDayClosed(c) => Some((c.accounts_paid, c.total_paid)),
            _ => None,
        })
        .collect();
    assert_eq!(closes, [(1, earned)]);
    let sent: Vec<i64> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::PayoutSent(p) => Some(p.amount),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [earned]);
    sys.finish().await;
}

#[tokio::test]
async fn after_downtime_the_missed_days_close_once_the_backlog_is_applied_each_with_its_own_amounts() {
    let nats = TestNats::start().await;
    let db = database().await;
    let mail = std::env::temp_dir().join(format!("ates-mail-{}", Uuid::new_v4()));
    let config = ates_tests::settings(&nats, &db.url, &["--mail-dir", &mail.display().to_string()]);
    let accounting = AccountingService::build(&config.accounting().unwrap()).await.unwrap();
    // While accounting was down, three days of work piled up in TASKS.
    let js = accounting.backbone.js.clone();
    let streams = &config.backbone.streams;
    ates_messaging::streams::ensure(&js, streams, &[ates_messaging::streams::TASKS]).await.unwrap();
    let popugs = [Uuid::new_v4(), Uuid::new_v4()];
    let today = Utc::now().date_naive();
    for days_ago in [3, 2, 1] {
        for n in 0..150 {
            let popug = popugs[n % 2];
            let at = noon(today - Span::days(days_ago)) + Span::seconds(i64::try_from(n).unwrap());
            work_of(&js, popug, at, true).await;
        }
    }

    let shutdown = CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    accounting.spawn_workers(&shutdown, &mut workers);

    let pool = &accounting.backbone.pool;
    eventually_with("the missed days closed", Duration::from_secs(60), || async {
        let last_closed: Option<NaiveDate> =
            sqlx::query_scalar("SELECT last_closed FROM billing_state").fetch_one(pool).await.ok()?;
        (last_closed == Some(yesterday())).then_some(())
    })
    .await;
    let (applied, misbilled): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE billing_date <> (business_time AT TIME ZONE 'UTC')::date)
         FROM transactions WHERE kind <> 'payout'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!((applied, misbilled), (3 * 150 * 2, 0), "the whole backlog, each on its own day");
    // Every task earns at least nothing, so each day's payout is exactly that day's work.
    let wrong: Vec<(Uuid, NaiveDate, i64, i64)> = sqlx::query_as(
        "SELECT account_id, billing_date, coalesce(sum(-amount) FILTER (WHERE kind = 'payout'), 0)::bigint AS paid,
                coalesce(sum(amount) FILTER (WHERE kind <> 'payout'), 0)::bigint AS earned
         FROM transactions GROUP BY account_id, billing_date
         HAVING coalesce(sum(-amount) FILTER (WHERE kind = 'payout'), 0) <> coalesce(sum(amount) FILTER (WHERE kind <> 'payout'), 0)",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(wrong.is_empty(), "each day paid what it earned: {wrong:?}");
    let closed: Vec<NaiveDate> =
        sqlx::query_scalar("SELECT billing_date FROM billing_days ORDER BY billing_date")
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(closed, (1..=3).rev().map(|d| today - Span::days(d)).collect::<Vec<_>>());
    shutdown.cancel();
}

fn lines_with(logs: &Mutex<Vec<u8>>, text: &str) -> Vec<String> {
    String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_close_that_fails_is_retried_with_backoff_until_it_succeeds() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    work(&sys, &popug, noon(yesterday()), true).await;
    sys.settled().await;
    sqlx::raw_sql(
        "CREATE FUNCTION blip() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'a database blip at midnight'; END $$;
         CREATE TRIGGER blip BEFORE INSERT ON billing_days FOR EACH ROW EXECUTE FUNCTION blip();",
    )
    .execute(pool(&sys))
    .await
    .unwrap();
    let mut job = sys.system.accounting.daily_close();
    job.retry_initial = Duration::from_millis(50);
    let (logs, subscriber) = captured_logs();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(async move { job.close_ended(&shutdown).await }.with_subscriber(subscriber));

    eventually("three failed attempts", || async {
        (lines_with(&logs, "the daily close failed").len() >= 3).then_some(())
    })
    .await;
    sqlx::raw_sql("DROP TRIGGER blip ON billing_days").execute(pool(&sys)).await.unwrap();
    running.await.unwrap();

    let failures = lines_with(&logs, "the daily close failed");
    assert!(failures.iter().all(|l| l.contains("a database blip at midnight")), "{failures:?}");
    for attempt in 1..=3 {
        assert!(
            failures.iter().any(|l| l.contains(&format!("attempt={attempt}"))),
            "attempt {attempt} logged: {failures:?}"
        );
    }
    let successes = lines_with(&logs, "the daily close ran");
    assert_eq!(successes.len(), 1, "success is logged once: {successes:?}");
    let last_closed: Option<NaiveDate> =
        sqlx::query_scalar("SELECT last_closed FROM billing_state").fetch_one(pool(&sys)).await.unwrap();
    assert_eq!(last_closed, Some(yesterday()));
    sys.finish().await;
}

#[tokio::test]
async fn a_day_before_the_first_activity_pays_nothing_and_a_day_over_a_year_back_is_refused() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    work(&sys, &popug, noon(yesterday()), true).await;
    work(&sys, &popug, noon(yesterday()) + Span::minutes(1), true).await;
    sys.settled().await;
    let admin = sys.admin_token().await;
    let owed = super::close::balance(&sys, &popug).await;

    let early = close(&sys, yesterday() - Span::days(30)).await;

    assert_eq!((early["accounts_paid"].as_i64(), early["total_paid"].as_i64()), (Some(0), Some(0)));
    let (last_closed, days): (Option<NaiveDate>, i64) =
        sqlx::query_as("SELECT (SELECT last_closed FROM billing_state), (SELECT count(*) FROM billing_days)")
            .fetch_one(pool(&sys))
            .await
            .unwrap();
    assert_eq!((last_closed, days), (None, 0), "nothing was closed");
    let today = Utc::now().date_naive();
    for day in [NaiveDate::from_ymd_opt(1, 1, 1).unwrap(), today - Span::days(400)] {
        let refused = sys.post(&format!("/api/accounting/billing-days/{day}/close"), &admin, json!({})).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{refused:?}");
        assert!(refused.detail().contains("more than a year back"), "{refused:?}");
    }
    let closed = close(&sys, yesterday()).await;
    assert_eq!(closed["total_paid"].as_i64(), Some(owed), "the real day still pays");
    sys.finish().await;
}
