//! The payout rule against an oracle: random multi-day histories around midnight in a non-UTC
//! time zone, delivered out of order with duplicates, with closes at random points.
//!
//! The oracle knows only the rule: a transaction is billed on its event's business date, or the
//! earliest open day when that day is closed; closing a day pays every account the positive part
//! of the sum of its entries billed on or before that day.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_nats::jetstream::message::PublishMessage;
use ates_schemas::Envelope;
use ates_schemas::events::{AssignReason, TaskAssignedV1, TaskCompletedV1};
use ates_tests::TestSystem;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

/// UTC+05:45: midnight there is nowhere near midnight UTC.
const ZONE: Tz = chrono_tz::Asia::Kathmandu;
/// The business days the history spans.
const DAYS: i64 = 4;

/// What an event does to the ledger.
#[derive(Debug, Clone, Copy)]
enum Effect {
    Fee { task: Uuid, account: Uuid },
    Reward { task: Uuid, account: Uuid },
}

#[derive(Debug, Clone)]
struct Event {
    id: Uuid,
    time: DateTime<Utc>,
    effect: Effect,
    subject: String,
    payload: Vec<u8>,
}

/// One step of the run: deliver some events (copies included), or close a day.
#[derive(Debug, Clone)]
enum Step {
    Deliver(Vec<usize>),
    Close(NaiveDate),
}

struct History {
    accounts: Vec<Uuid>,
    tasks: Vec<Uuid>,
    events: Vec<Event>,
    steps: Vec<Step>,
}

fn business_date(time: DateTime<Utc>) -> NaiveDate {
    time.with_timezone(&ZONE).date_naive()
}

fn local_midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap().and_local_timezone(ZONE).unwrap().to_utc()
}

impl History {
    /// Days `first`..`first + DAYS`; events at random times, a third of them within three seconds
    /// of a local midnight; deliveries in random order and phases, a third of them repeated; a
    /// close after some phases, sometimes of a day several days after the last closed one.
    fn generate(seed: u64, first: NaiveDate) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let accounts: Vec<Uuid> = (0..rng.random_range(2..=4)).map(|_| Uuid::new_v4()).collect();
        let span = Duration::days(DAYS).num_seconds();
        let start = local_midnight(first);
        let time = |rng: &mut StdRng| {
            if rng.random_bool(0.35) {
                let midnight = local_midnight(first + Duration::days(rng.random_range(1..DAYS)));
                midnight + Duration::milliseconds(rng.random_range(-3000..3000))
            } else {
                start + Duration::seconds(rng.random_range(0..span))
            }
        };
        let (mut tasks, mut events) = (Vec::new(), Vec::new());
        for _ in 0..rng.random_range(12..=24) {
            let task = Uuid::new_v4();
            tasks.push(task);
            let mut assignee = accounts[rng.random_range(0..accounts.len())];
            let mut previous = None;
            for shuffle in 0..=rng.random_range(0..=2) {
                if shuffle > 0 {
                    assignee = accounts[rng.random_range(0..accounts.len())];
                }
                let reason = if shuffle == 0 { AssignReason::Created } else { AssignReason::Shuffle };
                let data = TaskAssignedV1 {
                    task_id: task,
                    assignee_id: assignee,
                    previous_assignee_id: previous,
                    reason,
                };
                events.push(event(
                    Envelope::at("task-tracker", time(&mut rng), data),
                    Effect::Fee { task, account: assignee },
                ));
                previous = Some(assignee);
            }
            if rng.random_bool(0.7) {
                let data = TaskCompletedV1 { task_id: task, assignee_id: assignee };
                events.push(event(
                    Envelope::at("task-tracker", time(&mut rng), data),
                    Effect::Reward { task, account: assignee },
                ));
            }
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        order.shuffle(&mut rng);
        let phases = rng.random_range(3..=5);
        let mut steps = Vec::new();
        let mut closed = first - Duration::days(1);
        let last = first + Duration::days(DAYS - 1);
        let mut delivered = 0;
        for chunk in order.chunks(order.len().div_ceil(phases)) {
            let mut deliveries = chunk.to_vec();
            // Copies of events delivered before, or in this very phase.
            let earlier = &order[..delivered];
            delivered += chunk.len();
            for _ in 0..deliveries.len() / 3 {
                let pool = if earlier.is_empty() || rng.random_bool(0.5) { chunk } else { earlier };
                deliveries.push(pool[rng.random_range(0..pool.len())]);
            }
            deliveries.shuffle(&mut rng);
            steps.push(Step::Deliver(deliveries));
            if closed < last && rng.random_bool(0.7) {
                // Usually the next day; sometimes a catch-up over several.
                let ahead = if rng.random_bool(0.3) { rng.random_range(2..=3) } else { 1 };
                closed = (closed + Duration::days(ahead)).min(last);
                steps.push(Step::Close(closed));
            }
        }
        steps.push(Step::Close(last));
        History { accounts, tasks, events, steps }
    }

    /// Per (account, billing day): what the rule pays out, given the tasks' prices; and the
    /// billing day of every fee and reward, by causing event.
    fn oracle(
        &self,
        prices: &HashMap<Uuid, (i64, i64)>,
    ) -> (BTreeMap<(Uuid, NaiveDate), i64>, HashMap<Uuid, NaiveDate>) {
        let mut entries: Vec<(Uuid, NaiveDate, i64)> = Vec::new();
        let mut billed: HashMap<Uuid, NaiveDate> = HashMap::new();
        let mut payouts = BTreeMap::new();
        let mut applied = HashSet::new();
        let mut last_closed: Option<NaiveDate> = None;
        for step in &self.steps {
            match step {
                Step::Deliver(indexes) => {
                    for event in indexes.iter().map(|i| &self.events[*i]) {
                        if !applied.insert(event.id) {
                            continue;
                        }
                        let business = business_date(event.time);
                        let day = match last_closed {
                            Some(closed) if business <= closed => closed + Duration::days(1),
                            _ => business,
                        };
                        let (account, amount) = match event.effect {
                            Effect::Fee { task, account } => (account, -prices[&task].0),
                            Effect::Reward { task, account } => (account, prices[&task].1),
                        };
                        entries.push((account, day, amount));
                        billed.insert(event.id, day);
                    }
                }
                Step::Close(date) => {
                    let from = match last_closed {
                        Some(closed) if closed >= *date => continue,
                        Some(closed) => closed + Duration::days(1),
                        None => match entries.iter().map(|e| e.1).min() {
                            Some(first) if first <= *date => first,
                            _ => continue,
                        },
                    };
                    for day in from.iter_days().take_while(|d| d <= date) {
                        for account in &self.accounts {
                            let closing: i64 =
                                entries.iter().filter(|e| e.0 == *account && e.1 <= day).map(|e| e.2).sum();
                            if closing > 0 {
                                entries.push((*account, day, -closing));
                                payouts.insert((*account, day), closing);
                            }
                        }
                    }
                    last_closed = Some(*date);
                }
            }
        }
        (payouts, billed)
    }
}

/// Each of `accounts`' statements of each day in `days` against the ledger itself: it carried
/// into the day the sum of its transactions billed before it, and closed the day with that and
/// the day's transactions it lists.
async fn assert_statements_add_up(
    sys: &TestSystem,
    admin: &str,
    accounts: &[Uuid],
    (from, to): (NaiveDate, NaiveDate),
    context: &str,
) {
    for account in accounts {
        for day in from.iter_days().take_while(|d| *d <= to) {
            let (opening, closing): (i64, i64) = sqlx::query_as(
                "SELECT coalesce(sum(amount) FILTER (WHERE billing_date < $2), 0)::bigint, coalesce(sum(amount), 0)::bigint
                 FROM transactions WHERE account_id = $1 AND billing_date <= $2",
            )
            .bind(account)
            .bind(day)
            .fetch_one(pool(sys))
            .await
            .unwrap();
            let path = format!("/api/accounting/accounts/{account}?date={day}");
            let statement = sys.get(&path, admin).await.expect(StatusCode::OK);
            let listed: i64 = statement["transactions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["amount"].as_i64().unwrap())
                .sum();
            assert_eq!(
                (statement["opening_balance"].as_i64(), statement["closing_balance"].as_i64()),
                (Some(opening), Some(closing)),
                "{context}: {account}'s statement of {day}"
            );
            assert_eq!(closing - opening, listed, "{context}: {account}'s statement of {day} lists the day");
        }
    }
}

fn event<E: ates_schemas::Event>(envelope: Envelope<E>, effect: Effect) -> Event {
    Event {
        id: envelope.event_id,
        time: envelope.event_time,
        effect,
        subject: E::subject(),
        payload: serde_json::to_vec(&envelope).unwrap(),
    }
}

fn pool(sys: &TestSystem) -> &PgPool {
    &sys.system.accounting.backbone.pool
}

/// Runs `history` through a fresh system and compares the ledger with the oracle.
async fn check(seed: u64) {
    let sys = TestSystem::start_configured(|config| {
        config.calendar.timezone = ZONE;
        config.accounting.close_schedule = "0 0 0 1 1 *".parse().unwrap(); // never during the test
    })
    .await;
    let today = business_date(Utc::now());
    let first = today - Duration::days(DAYS + 2);
    let history = History::generate(seed, first);
    let (js, admin) = (sys.jetstream().await, sys.admin_token().await);
    for step in &history.steps {
        match step {
            Step::Deliver(indexes) => {
                for event in indexes.iter().map(|i| &history.events[*i]) {
                    let message = PublishMessage::build()
                        .payload(event.payload.clone().into())
                        .message_id(Uuid::new_v4().to_string());
                    js.send_publish(event.subject.clone(), message).await.unwrap().await.unwrap();
                }
                sys.settled().await;
            }
            Step::Close(day) => {
                let path = format!("/api/accounting/billing-days/{day}/close");
                sys.post(&path, &admin, serde_json::json!({})).await.expect(StatusCode::OK);
                let days = (first - Duration::days(1), today + Duration::days(1));
                assert_statements_add_up(
                    &sys,
                    &admin,
                    &history.accounts,
                    days,
                    &format!("seed {seed}, {day} closed"),
                )
                .await;
            }
        }
    }
    sys.settled().await;

    let prices: HashMap<Uuid, (i64, i64)> =
        sqlx::query_as::<_, (Uuid, i64, i64)>("SELECT task_id, assign_fee, completion_reward FROM tasks")
            .fetch_all(pool(&sys))
            .await
            .unwrap()
            .into_iter()
            .map(|(task, fee, reward)| (task, (fee, reward)))
            .collect();
    assert_eq!(prices.len(), history.tasks.len(), "seed {seed}: every task priced");
    let (expected_payouts, expected_days) = history.oracle(&prices);
    let payouts: BTreeMap<(Uuid, NaiveDate), i64> = sqlx::query_as::<_, (Uuid, NaiveDate, i64)>(
        "SELECT account_id, billing_date, -amount FROM transactions WHERE kind = 'payout'",
    )
    .fetch_all(pool(&sys))
    .await
    .unwrap()
    .into_iter()
    .map(|(account, day, amount)| ((account, day), amount))
    .collect();
    assert_eq!(payouts, expected_payouts, "seed {seed}: every day's payouts follow the rule");
    let days: HashMap<Uuid, NaiveDate> =
        sqlx::query_as("SELECT cause_event_id, billing_date FROM transactions WHERE kind <> 'payout'")
            .fetch_all(pool(&sys))
            .await
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(days, expected_days, "seed {seed}: every fee and reward billed to its day");

    let balances: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(balance), 0)::bigint FROM balances WHERE account_id <> '00000000-0000-0000-0000-000000000000'",
    )
    .fetch_one(pool(&sys))
    .await
    .unwrap();
    let (fees, rewards) = history.events.iter().fold((0, 0), |(fees, rewards), e| match e.effect {
        Effect::Fee { task, .. } => (fees + prices[&task].0, rewards),
        Effect::Reward { task, .. } => (fees, rewards + prices[&task].1),
    });
    let paid: i64 = payouts.values().sum();
    assert_eq!(paid + balances, rewards - fees, "seed {seed}: payouts and balances are all that was earned");
    let closes: Vec<(i64, i64)> =
        sqlx::query_as("SELECT accounts_paid, total_paid FROM billing_days ORDER BY billing_date")
            .fetch_all(pool(&sys))
            .await
            .unwrap();
    let reported: i64 = closes.iter().map(|c| c.1).sum();
    assert_eq!(reported, paid, "seed {seed}: each close reports what it paid");
    assert_eq!(
        closes.iter().map(|c| c.0).sum::<i64>(),
        i64::try_from(payouts.len()).unwrap(),
        "seed {seed}: and whom"
    );
    let report = sys.get("/api/accounting/invariants", &admin).await.expect(StatusCode::OK);
    assert_eq!(report["ok"], true, "seed {seed}: {report}");
    sys.finish().await;
}

#[tokio::test]
async fn every_days_payout_is_its_closing_balance_whatever_the_order_duplicates_and_close_times() {
    let random = rand::random::<u64>();
    eprintln!("random seed: {random}");
    futures::future::join_all([3, 17, 2026, random].map(|seed| Box::pin(check(seed)))).await;
}
