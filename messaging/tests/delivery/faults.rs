use std::time::Duration;

use ates_messaging::outbox::republish;
use ates_testkit::{eventually, eventually_with};

use crate::support::{Effects, Env};

#[tokio::test]
async fn after_a_kill_9_of_nats_mid_flow_and_a_republish_every_event_has_exactly_one_effect() {
    let mut env = Env::start().await;
    let handler = Effects::new("effects");
    env.spawn_relay();
    env.spawn_consumer(&handler);
    let started = chrono::Utc::now();
    let total: u64 = 10_000;

    let producer = {
        let env_pool = env.pool.clone();
        tokio::spawn(async move {
            for _ in 0..total / 50 {
                let envelopes: Vec<_> = (0..50).map(|_| crate::support::completed()).collect();
                crate::support::commit(&env_pool, &envelopes).await;
                tokio::task::yield_now().await;
            }
        })
    };
    eventually("a third of the flow applied", || async {
        (env.effects_in("effects").await.1 >= 3_000).then_some(())
    })
    .await;
    env.nats().kill().await;
    env.nats().restart().await;
    producer.await.unwrap();
    eventually_with("the relay published everything", Duration::from_secs(120), || async {
        (env.unpublished().await == 0).then_some(())
    })
    .await;

    let stats = republish(&env.pool, &env.js, started, chrono::Utc::now(), |_| {}).await.unwrap();

    assert_eq!(stats.stored + stats.duplicates, total, "the whole range went out again");
    env.expect_effects_exactly_once(10_000).await;
}
