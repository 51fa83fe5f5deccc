use ates_tests::Role;
use std::collections::HashMap;
use std::sync::Arc;

use ates_accounting::AccountingService;
use ates_messaging::{Consumer, ConsumerSpec, streams};
use ates_tests::TestSystem;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::workload::Workload;

fn pool(sys: &TestSystem) -> &PgPool {
    &sys.system.accounting.backbone.pool
}

/// The names of accounting's task consumers.
fn task_consumers() -> Vec<&'static str> {
    ates_accounting::consumers::tasks::SUBSCRIPTIONS.iter().map(|s| s.consumer).collect()
}

/// Waits until accounting has applied `events` distinct task events and acknowledged all.
async fn drained(sys: &TestSystem, events: usize) {
    let js = sys.jetstream().await;
    ates_testkit::eventually_with(
        &format!("accounting to apply {events} events"),
        std::time::Duration::from_secs(60),
        || async {
            let applied = ates_accounting::consumers::tasks::applied_count(pool(sys)).await.ok()?;
            let stream = js.get_stream("TASKS").await.ok()?;
            for consumer in task_consumers() {
                let info = stream.consumer_info(consumer).await.ok()?;
                if info.num_pending > 0 || info.num_ack_pending > 0 {
                    return None;
                }
            }
            (applied == i64::try_from(events).unwrap()).then_some(())
        },
    )
    .await;
}

async fn prices(pool: &PgPool, tasks: &[Uuid]) -> HashMap<Uuid, (i64, i64)> {
    sqlx::query_as::<_, (Uuid, i64, i64)>(
        "SELECT task_id, assign_fee, completion_reward FROM tasks WHERE task_id = ANY($1)",
    )
    .bind(tasks)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|(id, fee, reward)| (id, (fee, reward)))
    .collect()
}

async fn balances(pool: &PgPool, accounts: &[Uuid]) -> HashMap<Uuid, i64> {
    let found: HashMap<Uuid, i64> =
        sqlx::query_as("SELECT account_id, balance FROM balances WHERE account_id = ANY($1)")
            .bind(accounts)
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    accounts.iter().map(|a| (*a, found.get(a).copied().unwrap_or(0))).collect()
}

async fn assert_invariants(sys: &TestSystem) {
    let report = sys.get("/api/accounting/invariants", &sys.admin_token().await).await.expect(StatusCode::OK);
    assert_eq!(report["ok"], true, "{report}");
}

/// Checks one applied workload against the oracle.
async fn assert_matches_oracle(sys: &TestSystem, workload: &Workload) {
    let prices = prices(pool(sys), &workload.tasks).await;
    assert_eq!(prices.len(), workload.tasks.len(), "seed {}: every task priced", workload.seed);
    for (fee, reward) in prices.values() {
        assert!(
            (1000..=2000).contains(fee) && (2000..=4000).contains(reward),
            "seed {}: price in range",
            workload.seed
        );
    }
    let expected = workload.oracle(&prices);
    let actual = balances(pool(sys), &workload.accounts).await;
    assert_eq!(actual, expected, "seed {}: balances equal the oracle", workload.seed);
    let transactions: i64 =
        sqlx::query_scalar("SELECT count(*) FROM transactions WHERE account_id = ANY($1)")
            .bind(&workload.accounts)
            .fetch_one(pool(sys))
            .await
            .unwrap();
    assert_eq!(
        transactions,
        i64::try_from(workload.transactions()).unwrap(),
        "seed {}: one transaction per event",
        workload.seed
    );
}

#[tokio::test]
async fn random_workloads_with_duplicates_in_random_order_reach_the_oracles_balances() {
    let sys = TestSystem::start().await;
    let js = sys.jetstream().await;
    let seeds: Vec<u64> = [1, 2, 3].into_iter().chain((0..3).map(|_| rand::random::<u64>())).collect();
    let mut applied = 0;
    for seed in seeds {
        let workload = Workload::generate(seed);
        workload.publish(&js).await;
        applied += workload.unique.len();
        drained(&sys, applied).await;
        assert_matches_oracle(&sys, &workload).await;
    }
    let priced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject = 'accounting.task_priced.v1'")
            .fetch_one(pool(&sys))
            .await
            .unwrap();
    let tasks: i64 = sqlx::query_scalar("SELECT count(*) FROM tasks").fetch_one(pool(&sys)).await.unwrap();
    assert_eq!(priced, tasks, "each task priced exactly once");
    assert_invariants(&sys).await;
    sys.finish().await;
}

#[tokio::test]
async fn two_accounting_instances_consuming_at_once_reach_the_oracles_balances() {
    let sys = TestSystem::start().await;
    let second = AccountingService::build(&sys.config.accounting().unwrap()).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    for consumer in second.task_consumers() {
        tokio::spawn(consumer.run(shutdown.child_token()));
    }
    let js = sys.jetstream().await;

    let workloads: Vec<Workload> = (10..14).map(Workload::generate).collect();
    for workload in &workloads {
        workload.publish(&js).await;
    }

    drained(&sys, workloads.iter().map(|w| w.unique.len()).sum()).await;
    for workload in &workloads {
        assert_matches_oracle(&sys, workload).await;
    }
    assert_invariants(&sys).await;
    shutdown.cancel();
    sys.finish().await;
}

#[tokio::test]
async fn a_second_consumer_applying_every_event_again_posts_nothing_twice() {
    let sys = TestSystem::start().await;
    let js = sys.jetstream().await;
    let workload = Workload::generate(42);
    workload.publish(&js).await;
    drained(&sys, workload.unique.len()).await;
    let before = balances(pool(&sys), &workload.accounts).await;
    let applied = ates_accounting::consumers::tasks::applied_count(pool(&sys)).await.unwrap();

    // The ledger keeps no dedupe record per event: a consumer under another name hands every
    // event to the handler again, and its own records (transaction ids) must stop each repeat.
    let replayer = Consumer::new(
        js.clone(),
        pool(&sys).clone(),
        ConsumerSpec::new("accounting-tasks-again", streams::TASKS, &[]),
        Arc::new(ates_accounting::consumers::tasks::TaskEvents { zone: chrono_tz::UTC }),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    tokio::spawn(replayer.run(shutdown.child_token()));
    ates_testkit::eventually("the second consumer went through everything", || async {
        let stream = js.get_stream("TASKS").await.ok()?;
        let info = stream.consumer_info("accounting-tasks-again").await.ok()?;
        let everything = info.ack_floor.stream_sequence == stream.cached_info().state.last_sequence;
        (everything && info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    shutdown.cancel();

    assert_eq!(
        balances(pool(&sys), &workload.accounts).await,
        before,
        "transaction ids stopped every repeat"
    );
    assert_eq!(ates_accounting::consumers::tasks::applied_count(pool(&sys)).await.unwrap(), applied);
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer <> 'accounting-accounts'")
            .fetch_one(pool(&sys))
            .await
            .unwrap();
    assert_eq!(recorded, 0, "no dedupe record per event");
    assert_invariants(&sys).await;
    sys.finish().await;
}

#[tokio::test]
async fn a_task_assigned_before_it_is_added_gets_its_title_later() {
    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    let js = sys.jetstream().await;
    let task = Uuid::new_v4();
    let assigned = assigned_on_creation(task, popug.id);
    js.publish("tasks.assigned.v1", serde_json::to_vec(&assigned).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    drained(&sys, 1).await;

    let statement = sys.get("/api/accounting/me", &popug.token).await.expect(StatusCode::OK);
    let fee = &statement["transactions"][0];
    assert!(fee["task_title"].is_null());
    assert_eq!(fee["description"], format!("Fee for being assigned task {task}"));
    let balance = statement["balance"].as_i64().unwrap();
    assert!((-2000..=-1000).contains(&balance), "the fee was charged before the task was known: {balance}");

    let added = feed_the_birds(task, "POP-9", popug.id);
    js.publish("tasks.added.v2", serde_json::to_vec(&added).unwrap().into()).await.unwrap().await.unwrap();
    drained(&sys, 2).await;

    let statement = sys.get("/api/accounting/me", &popug.token).await.expect(StatusCode::OK);
    let fee = &statement["transactions"][0];
    assert_eq!(
        (fee["task_title"].as_str(), fee["jira_id"].as_str()),
        (Some("Feed the birds"), Some("POP-9"))
    );
    assert_eq!(fee["description"], "Fee for being assigned [POP-9] Feed the birds");
    assert_eq!(statement["balance"].as_i64().unwrap(), balance, "and it was not charged again");
    let priced: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject = 'accounting.task_priced.v1'")
            .fetch_one(pool(&sys))
            .await
            .unwrap();
    assert_eq!(priced, 1, "priced once, when first heard of");
    let _ = json!({});
    sys.finish().await;
}

#[tokio::test]
async fn a_task_added_and_assigned_in_one_batch_is_priced_with_its_title() {
    use ates_messaging::Handler;
    use ates_schemas::ReceivedEvent;

    let sys = TestSystem::start().await;
    let popug = sys.popug(Role::Worker).await;
    let task = Uuid::new_v4();
    let added = serde_json::to_vec(&feed_the_birds(task, "POP-7", popug.id)).unwrap();
    let assigned = serde_json::to_vec(&assigned_on_creation(task, popug.id)).unwrap();
    let batch: Vec<ReceivedEvent> =
        [&added, &assigned].map(|bytes| ReceivedEvent::decode(bytes).unwrap()).into_iter().collect();
    let ids: Vec<Uuid> = batch.iter().map(|e| e.meta.event_id).collect();
    let handler = ates_accounting::consumers::tasks::TaskEvents { zone: chrono_tz::UTC };
    // The batch as a consumer applies it (events published nowhere, so accounting's own consumers
    // never see them), then once more, as after a lost ack.
    for _ in 0..2 {
        let mut tx = pool(&sys).begin().await.unwrap();
        handler.handle(&mut tx, &batch).await.unwrap();
        tx.commit().await.unwrap();
    }

    let (title, jira_id, added_event): (Option<String>, Option<String>, Option<Uuid>) =
        sqlx::query_as("SELECT title, jira_id, added_event_id FROM tasks WHERE task_id = $1")
            .bind(task)
            .fetch_one(pool(&sys))
            .await
            .unwrap();
    assert_eq!(
        (title.as_deref(), jira_id.as_deref(), added_event),
        (Some("Feed the birds"), Some("POP-7"), Some(ids[0])),
        "priced with its title, and its tasks.added recorded as applied"
    );
    let applied =
        ates_accounting::consumers::tasks::applied(pool(&sys), "accounting-tasks", &ids).await.unwrap();
    assert_eq!(applied.len(), 2, "both events are their own record");
    let (fees, balance): (i64, i64) = sqlx::query_as(
        "SELECT count(*), (SELECT balance FROM balances WHERE account_id = $1) FROM transactions WHERE task_id = $2",
    )
    .bind(popug.id)
    .bind(task)
    .fetch_one(pool(&sys))
    .await
    .unwrap();
    let (fee, _) = prices(pool(&sys), &[task]).await[&task];
    assert_eq!((fees, balance), (1, -fee), "the fee is posted once, at the task's one price");
    sys.finish().await;
}

/// `task` assigned to `assignee` on its creation, as the task tracker announces it.
fn assigned_on_creation(
    task: Uuid,
    assignee: Uuid,
) -> ates_schemas::Envelope<ates_schemas::events::TaskAssignedV1> {
    use ates_schemas::events::{AssignReason, TaskAssignedV1};
    ates_schemas::Envelope::new(
        "task-tracker",
        TaskAssignedV1 {
            task_id: task,
            assignee_id: assignee,
            previous_assignee_id: None,
            reason: AssignReason::Created,
        },
    )
}

/// `task` added as "Feed the birds" with `jira_id`, as the task tracker announces it.
fn feed_the_birds(
    task: Uuid,
    jira_id: &str,
    by: Uuid,
) -> ates_schemas::Envelope<ates_schemas::events::TaskAddedV2> {
    ates_schemas::Envelope::new(
        "task-tracker",
        ates_schemas::events::TaskAddedV2 {
            task_id: task,
            title: "Feed the birds".into(),
            jira_id: Some(jira_id.into()),
            description: String::new(),
            created_by: by,
        },
    )
}

/// A payout of one cent to `account`, caused by nothing else (payouts need no causing event).
fn cent_payout(account: Uuid) -> ates_accounting::domain::posting::Posting {
    ates_accounting::domain::posting::Posting {
        transaction_id: Uuid::new_v4(),
        account_id: account,
        kind: ates_schemas::events::TransactionKind::Payout,
        amount: -1,
        task_id: None,
        business_time: chrono::Utc::now(),
        cause_event_id: Uuid::new_v4(),
        correlation_id: None,
    }
}

/// Two instances posting the same cause at once: the second starts while the first holds the
/// popug's balance and waits for it. It must not post the cause again, the popug is charged once,
/// and posting it again posts nothing.
#[tokio::test]
async fn a_cause_another_instance_posts_meanwhile_is_not_posted_twice() {
    let sys = TestSystem::start().await;
    let zone = sys.config.accounting().unwrap().calendar.timezone;
    let popug = Uuid::new_v4();
    let payout = cent_payout(popug);
    let mut first = pool(&sys).begin().await.unwrap();
    ates_accounting::ledger::post(&mut first, vec![payout.clone()], zone, None).await.unwrap();

    let mut tx = pool(&sys).begin().await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *tx).await.unwrap();
    let racing = payout.clone();
    let second = tokio::spawn(async move {
        let posted = ates_accounting::ledger::post(&mut tx, vec![racing], zone, None).await;
        tx.rollback().await.unwrap();
        posted
    });
    ates_testkit::eventually("the second posting to wait for the popug's balance", || async {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')",
        )
        .bind(pid)
        .fetch_one(pool(&sys))
        .await
        .ok()?;
        waiting.then_some(())
    })
    .await;
    first.commit().await.unwrap();
    let raced = second.await.unwrap();
    // It either finds the cause posted or (as now: it looked before the first committed) fails on
    // the transaction's key, and its consumer applies the batch again.
    assert!(
        raced.as_ref().map_or_else(|e| e.to_string().contains("transactions_pkey"), Vec::is_empty),
        "the second posting posted the cause again: {raced:?}"
    );

    assert_eq!(balances(pool(&sys), &[popug]).await[&popug], -1, "charged once");
    let mut again = pool(&sys).begin().await.unwrap();
    let posted = ates_accounting::ledger::post(&mut again, vec![payout], zone, None).await.unwrap();
    again.commit().await.unwrap();
    assert!(posted.is_empty(), "applied again, it finds the transaction posted");
    assert_invariants(&sys).await;
    sys.finish().await;
}

/// Postings for different popugs on the same day do not wait for each other: no row that every
/// posting locks (the company's balance, a day's totals). Two popugs whose postings go to
/// different rows of the day's totals (15 pairs in 16; the others share one of its
/// [`TOTAL_SHARDS`](ates_accounting::ledger::TOTAL_SHARDS) rows): the second posting may not wait
/// for a lock at all while the first is still open, and the ledger checks out after both.
#[tokio::test]
async fn postings_for_different_popugs_do_not_wait_for_each_other() {
    let sys = TestSystem::start().await;
    let zone = sys.config.accounting().unwrap().calendar.timezone;
    let shard = ates_accounting::ledger::totals_shard;
    let a = Uuid::new_v4();
    let b = std::iter::repeat_with(Uuid::new_v4).find(|b| shard(*b) != shard(a)).unwrap();
    let mut first = pool(&sys).begin().await.unwrap();
    ates_accounting::ledger::post(&mut first, vec![cent_payout(a)], zone, None).await.unwrap();

    let mut second = pool(&sys).begin().await.unwrap();
    sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *second).await.unwrap();
    let posted = ates_accounting::ledger::post(&mut second, vec![cent_payout(b)], zone, None).await;
    assert!(posted.is_ok(), "the second posting waited for the first: {posted:?}");
    second.commit().await.unwrap();
    first.commit().await.unwrap();

    let company: i64 = sqlx::query_scalar("SELECT sum(amount)::bigint FROM company_entries")
        .fetch_one(pool(&sys))
        .await
        .unwrap();
    assert_eq!(company, 2, "the company's side of both payouts");
    let totals: i64 = sqlx::query_scalar("SELECT sum(payouts)::bigint FROM daily_totals")
        .fetch_one(pool(&sys))
        .await
        .unwrap();
    assert_eq!(totals, -2, "the day's totals have both, whichever shards they went to");
    sys.finish().await;
}

/// The transactions one posting writes are one journal: the company's entry on the other side is
/// minus their sum. The invariant check finds a journal, a balance or a ledger that does not sum.
#[tokio::test]
async fn a_posting_is_one_journal_summing_to_zero_and_the_check_finds_one_that_does_not() {
    let sys = TestSystem::start().await;
    let zone = sys.config.accounting().unwrap().calendar.timezone;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let post = |postings: Vec<ates_accounting::domain::posting::Posting>| async {
        let mut tx = pool(&sys).begin().await.unwrap();
        let posted = ates_accounting::ledger::post(&mut tx, postings, zone, None).await.unwrap();
        tx.commit().await.unwrap();
        posted.len()
    };
    let first = cent_payout(a);
    assert_eq!(post(vec![first.clone(), cent_payout(b), cent_payout(a)]).await, 3);
    let journals = || async {
        sqlx::query_as::<_, (Uuid, i64)>("SELECT journal_id, amount FROM company_entries ORDER BY posted_at")
            .fetch_all(pool(&sys))
            .await
            .unwrap()
    };
    let once = journals().await;
    assert_eq!(once.len(), 1, "one company entry for the whole posting: {once:?}");
    assert_eq!(once[0].1, 3, "minus the three payouts of a cent");
    let in_journal: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE journal_id = $1")
        .bind(once[0].0)
        .fetch_one(pool(&sys))
        .await
        .unwrap();
    assert_eq!(in_journal, 3);
    // Posted again beside a new one, a transaction counts only where it was posted first.
    assert_eq!(post(vec![first.clone(), cent_payout(b)]).await, 1);
    assert_eq!(post(vec![first]).await, 0);
    let twice: Vec<i64> = journals().await.into_iter().map(|(_, amount)| amount).collect();
    assert_eq!(twice, [3, 1], "the second journal has only the new payout; the third none at all");
    let retention = std::time::Duration::from_secs(3600);
    let report = ates_accounting::invariants::check(pool(&sys), retention).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);

    let db = pool(&sys).clone();
    let tamper = |sql: &'static str| {
        let db = db.clone();
        async move { sqlx::query(sql).execute(&db).await.unwrap() }
    };
    tamper("UPDATE company_entries SET amount = amount + 1 WHERE journal_id = (SELECT journal_id FROM company_entries ORDER BY journal_id LIMIT 1)").await;
    let report = ates_accounting::invariants::check(pool(&sys), retention).await.unwrap();
    assert_eq!(
        report.problems,
        [
            "1 journal(s) have a company entry that is not minus the sum of their transactions",
            "the ledger sums to 1 cents instead of zero"
        ],
    );
    tamper("UPDATE company_entries SET amount = amount - 1 WHERE journal_id = (SELECT journal_id FROM company_entries ORDER BY journal_id LIMIT 1)").await;
    tamper("UPDATE transactions SET amount = amount - 1 WHERE seq = (SELECT min(seq) FROM transactions)")
        .await;
    let report = ates_accounting::invariants::check(pool(&sys), retention).await.unwrap();
    for problem in
        ["account balance(s) differ", "journal(s) have a company entry", "the ledger sums to -1 cents"]
    {
        assert!(report.problems.iter().any(|p| p.contains(problem)), "{problem}: {:?}", report.problems);
    }
    tamper("UPDATE transactions SET amount = amount + 1 WHERE seq = (SELECT min(seq) FROM transactions)")
        .await;
    for (broken, found, mend) in [
        (
            "INSERT INTO company_entries (journal_id, amount) VALUES ('00000000-0000-0000-0000-00000000000a', 0)",
            "1 journal(s) have a company entry that is not minus the sum of their transactions",
            "DELETE FROM company_entries WHERE journal_id = '00000000-0000-0000-0000-00000000000a'",
        ),
        (
            // A balance row moved away: one without transactions, and transactions without one.
            "UPDATE balances SET account_id = '00000000-0000-0000-0000-00000000000b'
             WHERE account_id = (SELECT account_id FROM balances ORDER BY account_id LIMIT 1)",
            "2 account balance(s) differ from the sum of their entries, or are missing",
            "UPDATE balances SET account_id = (SELECT account_id FROM transactions EXCEPT SELECT account_id FROM balances)
             WHERE account_id = '00000000-0000-0000-0000-00000000000b'",
        ),
        (
            "UPDATE transactions SET account_id = '00000000-0000-0000-0000-000000000000'
             WHERE seq = (SELECT min(seq) FROM transactions)",
            "1 transaction(s) are on the company's account instead of a popug's",
            "UPDATE transactions SET account_id = (SELECT account_id FROM balances b WHERE b.balance <>
                 (SELECT coalesce(sum(amount), 0) FROM transactions t WHERE t.account_id = b.account_id))
             WHERE account_id = '00000000-0000-0000-0000-000000000000'",
        ),
    ] {
        tamper(broken).await;
        let report = ates_accounting::invariants::check(pool(&sys), retention).await.unwrap();
        assert!(report.problems.iter().any(|p| p == found), "{found}: {:?}", report.problems);
        tamper(mend).await;
    }
    sys.finish().await;
}

/// A ledger written before journals (each transaction with its popug's and the company's entry)
/// becomes one journal per transaction, with every invariant holding.
#[tokio::test]
async fn a_ledger_of_entries_per_transaction_becomes_one_journal_per_transaction() {
    const JOURNALS: i64 = 20261203000001;
    let db = ates_testkit::database().await;
    let pool = ates_messaging::db::connect(&db.url, "accounting", 2).unwrap();
    let replica = ates_accounts_replica::MIGRATIONS.iter();
    let before = replica.clone().chain(ates_accounting::MIGRATIONS.iter().filter(|m| m.version < JOURNALS));
    ates_messaging::db::migrate(&pool, "accounting", before).await.unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    // (account, kind, amount, balance after)
    let rows = [
        (a, "assign_fee", -1500, -1500),
        (b, "completion_reward", 3000, 3000),
        (a, "completion_reward", 2500, 1000),
    ];
    let mut ids = Vec::new();
    for (account, kind, amount, after) in rows {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO transactions (transaction_id, account_id, kind, amount, balance_after, billing_date,
                                       business_time, cause_event_id, applied_event_id)
             VALUES ($1, $2, $3, $4, $5, current_date, now(), $6, $7)",
        )
        .bind(id)
        .bind(account)
        .bind(kind)
        .bind(amount)
        .bind(after)
        .bind(Uuid::new_v4())
        .bind(Uuid::new_v4())
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO entries (transaction_id, account_id, amount) VALUES ($1, $2, $3), ($1, $4, -$3)",
        )
        .bind(id)
        .bind(account)
        .bind(amount)
        .bind(Uuid::nil())
        .execute(&pool)
        .await
        .unwrap();
        ids.push(id);
    }
    sqlx::query("INSERT INTO balances (account_id, balance) VALUES ($1, 1000), ($2, 3000)")
        .bind(a)
        .bind(b)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO daily_totals (billing_date, shard, assign_fees, completion_rewards)
         VALUES (current_date, 0, -1500, 5500)",
    )
    .execute(&pool)
    .await
    .unwrap();

    // A transaction whose entries do not say what it does stops the upgrade, changing nothing.
    let company_entry = |id: Uuid| {
        sqlx::query("DELETE FROM entries WHERE transaction_id = $1 AND account_id = $2")
            .bind(id)
            .bind(Uuid::nil())
    };
    company_entry(ids[1]).execute(&pool).await.unwrap();
    let all = || replica.clone().chain(ates_accounting::MIGRATIONS.iter());
    let refused = ates_messaging::db::migrate(&pool, "accounting", all()).await.unwrap_err().to_string();
    assert!(refused.contains("1 transaction(s) do not have exactly their own entry"), "{refused}");
    // (The migrator's lock stays with the connection the upgrade failed on, as it would with a
    // service that exits.)
    pool.close().await;
    let pool = ates_messaging::db::connect(&db.url, "accounting", 2).unwrap();
    sqlx::query("INSERT INTO entries (transaction_id, account_id, amount) VALUES ($1, $2, -3000)")
        .bind(ids[1])
        .bind(Uuid::nil())
        .execute(&pool)
        .await
        .unwrap();
    ates_messaging::db::migrate(&pool, "accounting", all()).await.unwrap();
    let journals: Vec<(Uuid, i64)> =
        sqlx::query_as("SELECT c.journal_id, c.amount FROM company_entries c ORDER BY c.amount")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(journals.len(), 3, "one journal per transaction: {journals:?}");
    assert_eq!(
        journals.iter().map(|j| j.1).collect::<Vec<_>>(),
        [-3000, -2500, 1500],
        "the company's entries"
    );
    let own: i64 = sqlx::query_scalar("SELECT count(*) FROM transactions WHERE journal_id = transaction_id")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(own, 3, "each transaction in the journal of its own id");
    let report = ates_accounting::invariants::check(&pool, std::time::Duration::ZERO).await.unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.transactions, 3);
    // From now on every transaction is in a journal that has its company entry.
    for journal in ["NULL", "'00000000-0000-0000-0000-00000000000c'"] {
        let orphan = format!(
            "INSERT INTO transactions (transaction_id, account_id, kind, amount, balance_after, billing_date,
                                       business_time, cause_event_id, applied_event_id, journal_id)
             VALUES (gen_random_uuid(), gen_random_uuid(), 'payout', -1, -1, current_date, now(),
                     gen_random_uuid(), gen_random_uuid(), {journal})"
        );
        let refused = sqlx::query(sqlx::AssertSqlSafe(orphan)).execute(&pool).await.unwrap_err();
        let code = refused.as_database_error().and_then(|e| e.code()).unwrap_or_default().into_owned();
        assert!(["23502", "23503"].contains(&code.as_str()), "journal {journal}: {refused}");
    }
}

/// A statement's figures are all of one moment, however many postings commit while it is read:
/// the balance is the day's closing balance (nothing is billed to a later day) and the balance
/// after the last transaction it lists. Two tasks post to the popug one transaction at a time
/// throughout; read at different moments, the figures would disagree.
#[tokio::test]
async fn a_statement_is_of_one_moment_while_postings_commit() {
    let sys = TestSystem::start_configured(|config| {
        config.accounting.close_schedule = "0 0 0 1 1 *".parse().unwrap(); // never during the test
    })
    .await;
    let zone = sys.config.accounting().unwrap().calendar.timezone;
    let (popug, at) = (Uuid::new_v4(), chrono::Utc::now());
    let payout =
        move || ates_accounting::domain::posting::Posting { business_time: at, ..cent_payout(popug) };
    let mut first = pool(&sys).begin().await.unwrap();
    let day =
        ates_accounting::ledger::post(&mut first, vec![payout()], zone, None).await.unwrap()[0].billing_date;
    first.commit().await.unwrap();

    let stop = tokio_util::sync::CancellationToken::new();
    let posters: Vec<_> = (0..2)
        .map(|_| {
            let (pool, stop, payout) = (pool(&sys).clone(), stop.clone(), payout);
            tokio::spawn(async move {
                let mut posted = 0;
                while !stop.is_cancelled() {
                    let mut tx = pool.begin().await.unwrap();
                    ates_accounting::ledger::post(&mut tx, vec![payout()], zone, Some(day)).await.unwrap();
                    tx.commit().await.unwrap();
                    posted += 1;
                }
                posted
            })
        })
        .collect();
    let admin = sys.admin_token().await;
    let path = format!("/api/accounting/accounts/{popug}?date={day}");
    for read in 0..300 {
        let statement = sys.get(&path, &admin).await.expect(StatusCode::OK);
        let figure = |name: &str| statement[name].as_i64().unwrap();
        let last = statement["transactions"].as_array().unwrap().last().unwrap()["balance_after"].as_i64();
        assert_eq!(
            (figure("closing_balance"), last),
            (figure("balance"), Some(figure("balance"))),
            "read {read}: the closing balance and the last transaction's balance after it, against the balance"
        );
    }
    stop.cancel();
    for poster in posters {
        assert!(poster.await.unwrap() > 0, "each poster posted while the statements were read");
    }
    assert_invariants(&sys).await;
    sys.finish().await;
}
