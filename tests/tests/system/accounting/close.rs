//! The daily close, payouts and payout emails.

use ates_tests::Role;
use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream;
use ates_schemas::events::{AssignReason, TaskAssignedV1, TaskCompletedV1};
use ates_schemas::{DomainEvent, Envelope};
use ates_testkit::{SmtpServer, eventually, eventually_with};
use ates_tests::{Popug, TestSystem, outbox_events};
use chrono::{DateTime, Duration as Span, NaiveDate, SubsecRound, Utc};
use reqwest::StatusCode;
use serde_json::Value;
use uuid::Uuid;

/// A system whose payout mail goes to `smtp`, retrying at least every second.
pub(super) async fn with_smtp(smtp: &SmtpServer) -> TestSystem {
    let url = smtp.url();
    TestSystem::start_configured(move |config| {
        config.accounting.mail.smtp_url = Some(url.into());
        config.accounting.mail.retry_max = Duration::from_secs(1);
    })
    .await
}

/// Publishes `popug` being assigned a task at `at` and, if `complete`, completing it 10 s later.
pub(super) async fn work(sys: &TestSystem, popug: &Popug, at: DateTime<Utc>, complete: bool) {
    work_of(&sys.jetstream().await, popug.id, at, complete).await;
}

/// Publishes `account` being assigned a task at `at` and, if `complete`, completing it 10 s later.
pub(super) async fn work_of(js: &jetstream::Context, account: Uuid, at: DateTime<Utc>, complete: bool) {
    let task = Uuid::new_v4();
    let assigned = TaskAssignedV1 {
        task_id: task,
        assignee_id: account,
        previous_assignee_id: None,
        reason: AssignReason::Created,
    };
    js.publish(
        "tasks.assigned.v1",
        serde_json::to_vec(&Envelope::at("task-tracker", at, assigned)).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    if complete {
        let done = TaskCompletedV1 { task_id: task, assignee_id: account };
        let envelope = Envelope::at("task-tracker", at + Span::seconds(10), done);
        js.publish("tasks.completed.v1", serde_json::to_vec(&envelope).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
}

pub(super) fn yesterday() -> NaiveDate {
    Utc::now().date_naive().pred_opt().unwrap()
}

pub(super) fn noon(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

pub(super) async fn balance(sys: &TestSystem, popug: &Popug) -> i64 {
    sys.get("/api/accounting/me", &popug.token).await.expect(StatusCode::OK)["balance"].as_i64().unwrap()
}

pub(super) async fn close(sys: &TestSystem, day: NaiveDate) -> Value {
    sys.post(
        &format!("/api/accounting/billing-days/{day}/close"),
        &sys.admin_token().await,
        serde_json::json!({}),
    )
    .await
    .expect(StatusCode::OK)
}

/// A payee with a positive balance and a debtor with a negative one, from yesterday's work.
async fn payee_and_debtor(sys: &TestSystem) -> (Popug, Popug) {
    let (payee, debtor) = (sys.popug(Role::Worker).await, sys.popug(Role::Worker).await);
    work(sys, &payee, noon(yesterday()), true).await;
    work(sys, &payee, noon(yesterday()) + Span::minutes(5), true).await;
    work(sys, &debtor, noon(yesterday()), false).await;
    sys.settled().await;
    (payee, debtor)
}

async fn payout_emails_sent(sys: &TestSystem) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payout_emails WHERE sent_at IS NOT NULL")
        .fetch_one(&sys.system.accounting.backbone.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_close_pays_the_positive_balances_leaves_negatives_emails_each_payee_once_and_publishes_events() {
    let smtp = SmtpServer::start();
    let sys = with_smtp(&smtp).await;
    let (payee, debtor) = payee_and_debtor(&sys).await;
    let (owed, owing) = (balance(&sys, &payee).await, balance(&sys, &debtor).await);
    assert!(owed > 0 && owing < 0, "{owed} {owing}");

    let closed = close(&sys, yesterday()).await;

    assert_eq!(closed["billing_date"], yesterday().to_string());
    assert_eq!((closed["accounts_paid"].as_i64(), closed["total_paid"].as_i64()), (Some(1), Some(owed)));
    assert_eq!(
        (balance(&sys, &payee).await, balance(&sys, &debtor).await),
        (0, owing),
        "negatives carry over"
    );
    let day = sys
        .get(&format!("/api/accounting/me?date={}", yesterday()), &payee.token)
        .await
        .expect(StatusCode::OK);
    let payout = day["transactions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (payout["kind"].as_str(), payout["amount"].as_i64(), payout["balance_after"].as_i64()),
        (Some("payout"), Some(-owed), Some(0))
    );

    let messages =
        eventually("the payout email", || async { (smtp.messages().len() == 1).then(|| smtp.messages()) })
            .await;
    let mail = &messages[0];
    assert!(
        mail.contains(&format!("To: \"Test Popug\" <{}>", payee.email)) || mail.contains(&payee.email),
        "{mail}"
    );
    assert!(
        mail.contains(&format!("Message-ID: <payout-{}@ates>", payout["transaction_id"].as_str().unwrap())),
        "{mail}"
    );
    let dollars = format!("${}.{:02}", owed / 100, owed % 100);
    assert!(mail.contains(&dollars), "the amount in dollars: {dollars} in {mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "plain text and HTML");
    eventually("the payout_sent event", || async {
        outbox_events(&sys.system.accounting.backbone.pool)
            .await
            .iter()
            .any(|e| matches!(e.event, DomainEvent::PayoutSent(_)))
            .then_some(())
    })
    .await;
    let events = outbox_events(&sys.system.accounting.backbone.pool).await;
    let closes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::BillingDayClosed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(closes.len(), 1);
    assert_eq!((closes[0].accounts_paid, closes[0].total_paid), (1, owed));
    let sent: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::PayoutSent(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!((sent.len(), sent[0].amount, sent[0].email.as_str()), (1, owed, payee.email.as_str()));
    let (sent, attempts): (bool, i32) =
        sqlx::query_as("SELECT sent_at IS NOT NULL, attempts FROM payout_emails")
            .fetch_one(&sys.system.accounting.backbone.pool)
            .await
            .unwrap();
    assert!(sent && attempts == 1, "recorded as sent after one attempt, so never sent again");
    assert_eq!(smtp.messages().len(), 1, "emailed once");
    sys.finish().await;
}

#[tokio::test]
async fn closing_twice_and_two_closes_at_once_pay_once() {
    let smtp = SmtpServer::start();
    let sys = with_smtp(&smtp).await;
    let (payee, _) = payee_and_debtor(&sys).await;
    let owed = balance(&sys, &payee).await;

    let (first, second) = tokio::join!(close(&sys, yesterday()), close(&sys, yesterday()));
    let third = close(&sys, yesterday()).await;

    assert_eq!(first, second);
    assert_eq!(first, third, "closing a closed day returns the same result");
    assert_eq!(first["total_paid"].as_i64(), Some(owed));
    let payouts: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE kind = 'payout'")
        .fetch_one(&sys.system.accounting.backbone.pool)
        .await
        .unwrap();
    assert_eq!(payouts, 1);
    eventually("the email", || async { (payout_emails_sent(&sys).await == 1).then_some(()) }).await;
    assert_eq!(smtp.messages().len(), 1);
    let future = sys
        .post(
            &format!("/api/accounting/billing-days/{}/close", Utc::now().date_naive() + Span::days(2)),
            &sys.admin_token().await,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(future.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(future.detail().contains("has not begun yet"));
    let worker = sys
        .post(
            &format!("/api/accounting/billing-days/{}/close", yesterday()),
            &payee.token,
            serde_json::json!({}),
        )
        .await;
    assert_eq!(worker.status, StatusCode::FORBIDDEN);
    sys.finish().await;
}

#[tokio::test]
async fn days_missed_while_accounting_was_down_are_closed_in_order_on_start_up() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    let today = Utc::now().date_naive();
    for days_ago in [3, 2] {
        work(&sys, &popug, noon(today - Span::days(days_ago)), true).await;
    }
    sys.settled().await;
    let restarted_at = Utc::now();

    let restarted =
        ates_accounting::AccountingService::build(&sys.config.accounting().unwrap()).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut workers = tokio::task::JoinSet::new();
    restarted.spawn_workers(&shutdown, &mut workers);

    let days: Vec<(NaiveDate, DateTime<Utc>)> = eventually("the missed days closed", || async {
        let days: Vec<(NaiveDate, DateTime<Utc>)> =
            sqlx::query_as("SELECT billing_date, closed_at FROM billing_days ORDER BY billing_date")
                .fetch_all(&sys.system.accounting.backbone.pool)
                .await
                .ok()?;
        (days.len() == 3).then_some(days)
    })
    .await;
    let expected: Vec<NaiveDate> = (1..=3).rev().map(|d| today - Span::days(d)).collect();
    assert_eq!(days.iter().map(|(d, _)| *d).collect::<Vec<_>>(), expected);
    assert!(days.windows(2).all(|w| w[0].1 < w[1].1), "closed in order");
    assert!(days.iter().all(|(_, at)| *at > restarted_at), "by the start-up of the new instance");
    shutdown.cancel();
    sys.finish().await;
}

#[tokio::test]
async fn with_smtp_down_during_the_close_nothing_is_lost_and_every_email_arrives_once_after_it_comes_back() {
    let mut smtp = SmtpServer::start();
    let sys = with_smtp(&smtp).await;
    let payees = [sys.popug(Role::Worker).await, sys.popug(Role::Accountant).await];
    for payee in &payees {
        work(&sys, payee, noon(yesterday()), true).await;
        work(&sys, payee, noon(yesterday()) + Span::minutes(1), true).await;
    }
    sys.settled().await;
    smtp.stop();

    let closed = close(&sys, yesterday()).await;
    assert_eq!(closed["accounts_paid"], 2);
    let pool = &sys.system.accounting.backbone.pool;
    eventually("failed attempts recorded", || async {
        let failing: i64 = sqlx::query_scalar("SELECT count(*) FROM payout_emails WHERE attempts > 0 AND sent_at IS NULL AND last_error IS NOT NULL")
            .fetch_one(pool)
            .await
            .ok()?;
        (failing > 0).then_some(())
    })
    .await;
    assert!(smtp.messages().is_empty());
    smtp.restart();
    smtp.refuse(true);
    eventually("a refused attempt", || async {
        let refused: i64 =
            sqlx::query_scalar("SELECT count(*) FROM payout_emails WHERE last_error LIKE '%451%'")
                .fetch_one(pool)
                .await
                .ok()?;
        (refused > 0).then_some(())
    })
    .await;
    smtp.refuse(false);

    eventually_with("both emails sent", Duration::from_secs(60), || async {
        (payout_emails_sent(&sys).await == 2).then_some(())
    })
    .await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "each payee once");
    let recipients: HashMap<&str, usize> = payees
        .iter()
        .map(|p| (p.email.as_str(), messages.iter().filter(|m| m.contains(&p.email)).count()))
        .collect();
    assert!(recipients.values().all(|n| *n == 1), "{recipients:?}");
    sys.finish().await;
}

#[tokio::test]
async fn a_task_completed_just_after_the_cut_off_is_booked_on_the_next_day() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    work(&sys, &popug, noon(yesterday()), false).await;
    sys.settled().await;
    close(&sys, yesterday()).await;
    let today = Utc::now().date_naive();
    let midnight = today.and_hms_opt(0, 0, 0).unwrap().and_utc();

    work(&sys, &popug, midnight + Span::seconds(1), true).await; // just after the cut-off
    work(&sys, &popug, midnight - Span::seconds(20), true).await; // before it, but arriving after the close
    sys.settled().await;

    let days: Vec<(NaiveDate, String)> = sqlx::query_as(
        "SELECT billing_date, kind FROM transactions WHERE account_id = $1 ORDER BY business_time, seq",
    )
    .bind(popug.id)
    .fetch_all(&sys.system.accounting.backbone.pool)
    .await
    .unwrap();
    assert_eq!(days[0], (yesterday(), "assign_fee".to_owned()), "before the close: yesterday");
    assert!(
        days[1..].iter().all(|(day, _)| *day == today),
        "after the close everything is today's: {days:?}"
    );
    assert_eq!(days.len(), 5);
    sys.finish().await;
}

#[tokio::test]
async fn the_schedule_fires_at_the_configured_time_in_the_configured_time_zone() {
    let zone = chrono_tz::Asia::Kathmandu; // UTC+05:45: an offset no other zone has
    let sys = TestSystem::start_configured(move |config| config.calendar.timezone = zone).await;
    let popug = sys.popug(Role::Worker).await;
    sys.settled().await;
    let fire = (Utc::now().with_timezone(&zone) + Span::seconds(6)).trunc_subsecs(0);
    let local_yesterday = fire.date_naive().pred_opt().unwrap();
    let evening = local_yesterday.and_hms_opt(20, 0, 0).unwrap().and_local_timezone(zone).unwrap().to_utc();
    work(&sys, &popug, evening, true).await;
    sys.settled().await;
    let last_closed = || async {
        sqlx::query_scalar::<_, Option<NaiveDate>>("SELECT last_closed FROM billing_state")
            .fetch_one(&sys.system.accounting.backbone.pool)
            .await
            .unwrap()
    };
    assert!(Utc::now() < fire.to_utc(), "set-up took too long to observe the schedule");
    assert_eq!(last_closed().await, None, "nothing closes before the scheduled time");
    // A close schedule a few seconds from now, written in Kathmandu time.
    let schedule = fire.format("%S %M %H * * *").to_string();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut job = sys.system.accounting.daily_close();
    job.schedule = schedule.parse().unwrap();
    tokio::spawn(job.run_schedule(shutdown.clone()));

    let closed =
        eventually_with("the scheduled close", Duration::from_secs(20), || async { last_closed().await })
            .await;

    assert!(
        Utc::now() >= fire.to_utc(),
        "not before the scheduled time: now {}, fire {}",
        Utc::now(),
        fire.to_utc()
    );
    assert_eq!(closed, local_yesterday, "yesterday in Kathmandu");
    shutdown.cancel();
    sys.finish().await;
}

#[tokio::test]
async fn an_email_the_server_accepted_but_that_could_not_be_recorded_is_retried_with_backoff() {
    let smtp = SmtpServer::start();
    let url = smtp.url();
    let sys =
        TestSystem::start_configured(move |config| config.accounting.mail.smtp_url = Some(url.into())).await;
    let (payee, _) = payee_and_debtor(&sys).await;
    let pool = &sys.system.accounting.backbone.pool;
    sqlx::raw_sql(
        "CREATE FUNCTION cannot_record() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN RAISE EXCEPTION 'cannot record the email as sent'; END $$;
         CREATE TRIGGER cannot_record BEFORE UPDATE ON payout_emails FOR EACH ROW
         WHEN (NEW.sent_at IS NOT NULL) EXECUTE FUNCTION cannot_record();",
    )
    .execute(pool)
    .await
    .unwrap();

    close(&sys, yesterday()).await;

    let (attempts, waits): (i32, bool) = eventually("the failed attempt recorded", || async {
        sqlx::query_as(
            "SELECT attempts, next_attempt_at > now() FROM payout_emails
             WHERE sent_at IS NULL AND last_error LIKE '%cannot record the email as sent%'",
        )
        .fetch_optional(pool)
        .await
        .unwrap()
    })
    .await;
    assert!(attempts >= 1 && waits, "the attempt counts and the next one waits: {attempts} {waits}");
    assert!(smtp.messages().len() <= usize::try_from(attempts).unwrap() + 1, "no resend before the backoff");
    sqlx::raw_sql("DROP TRIGGER cannot_record ON payout_emails").execute(pool).await.unwrap();

    eventually_with("the email recorded as sent", Duration::from_secs(60), || async {
        (payout_emails_sent(&sys).await == 1).then_some(())
    })
    .await;
    let messages = smtp.messages();
    let ids: std::collections::HashSet<&str> =
        messages.iter().filter_map(|m| m.lines().find(|l| l.starts_with("Message-ID:"))).collect();
    assert_eq!(ids.len(), 1, "every resend is the same message: {ids:?}");
    assert!(messages.iter().all(|m| m.contains(&payee.email)));
    sys.finish().await;
}
