//! Two writers of one generation at once: two analytics instances, or a replay beside the live
//! consumer.

use std::sync::Arc;

use ates_messaging::Handler;
use ates_messaging::projection::Live;
use ates_schemas::events::{TransactionAppliedV1, TransactionKind};
use ates_schemas::{Envelope, ReceivedEvent};
use ates_tests::TestSystem;
use chrono::{NaiveDate, Utc};
use reqwest::StatusCode;
use uuid::Uuid;

fn transaction(account_id: Uuid, day: NaiveDate, kind: TransactionKind, amount: i64) -> ReceivedEvent {
    let data = TransactionAppliedV1 {
        transaction_id: Uuid::new_v4(),
        account_id,
        kind,
        amount,
        balance_after: 0,
        task_id: Some(Uuid::new_v4()),
        billing_date: day,
    };
    ReceivedEvent::decode(&serde_json::to_vec(&Envelope::new("accounting", data)).unwrap()).unwrap()
}

#[tokio::test]
async fn two_writers_at_once_add_up_on_an_account_instead_of_overwriting_each_other() {
    let sys = TestSystem::start_without_ledger().await;
    let pool = sys.system.analytics.backbone.pool.clone();
    let writer = Arc::new(Live(Arc::new(sys.system.analytics.dashboards)));
    let (account, day) = (Uuid::new_v4(), Utc::now().date_naive());
    let mut before = pool.begin().await.unwrap();
    writer
        .handle(&mut before, &[transaction(account, day, TransactionKind::AssignFee, -1000)])
        .await
        .unwrap();
    before.commit().await.unwrap();

    // One writer applies a fee and has not committed yet when the other applies a reward.
    let mut first = pool.begin().await.unwrap();
    writer.handle(&mut first, &[transaction(account, day, TransactionKind::AssignFee, -500)]).await.unwrap();
    let second = tokio::spawn({
        let (pool, writer) = (pool.clone(), writer.clone());
        async move {
            let mut second = pool.begin().await.unwrap();
            let reward = transaction(account, day, TransactionKind::CompletionReward, 800);
            writer.handle(&mut second, &[reward]).await.unwrap();
            second.commit().await.unwrap();
        }
    });
    sys.waiting_for_lock("").await;
    first.commit().await.unwrap();
    second.await.unwrap();

    let balance: i64 =
        sqlx::query_scalar("SELECT balance FROM account_days WHERE account_id = $1 AND day = $2")
            .bind(account)
            .bind(day)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(balance, -700, "-1000 - 500 + 800");
    let summary = sys.get("/api/analytics/summary", &sys.admin_token().await).await.expect(StatusCode::OK);
    assert_eq!(summary["negative_balance_accounts"], 1);
    sys.finish().await;
}
