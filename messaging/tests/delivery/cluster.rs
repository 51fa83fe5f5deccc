//! A three-node JetStream cluster with replicated streams: a node can die and nothing stops.

use ates_messaging::streams::StreamSettings;
use ates_testkit::NatsCluster;

use crate::support::{Effects, Env};

#[tokio::test]
async fn with_replicated_streams_killing_a_node_loses_and_doubles_nothing() {
    let _one_at_a_time = crate::support::SERVER_FAULTS.lock().await;
    let _log = crate::support::log_to_test_output();
    let mut cluster = NatsCluster::temporary(3, Vec::new()).await.unwrap();
    let settings = StreamSettings { replicas: 3, ..StreamSettings::default() };
    let env = Env::on_nats(&cluster.urls(), &settings).await;
    let info = env.js.get_stream("TASKS").await.unwrap().info().await.unwrap().clone();
    assert_eq!(info.config.num_replicas, 3, "R3");
    let handler = Effects::new("effects");
    env.spawn_relay();
    env.spawn_consumer(&handler);
    env.commit_events(200).await;

    // The hardest node to lose: the one leading the stream everything is published to.
    let leader = env.wait_until_replicated().await;
    let node =
        cluster.nodes().iter().position(|n| n.name() == Some(leader.as_str())).expect("the leader is a node");
    cluster.nodes()[node].kill();
    env.commit_events(200).await;
    env.expect_effects_exactly_once_within(400, std::time::Duration::from_secs(90)).await;
    cluster.nodes()[node].restart().await.unwrap();
    env.commit_events(100).await;

    env.expect_effects_exactly_once_within(500, std::time::Duration::from_secs(90)).await;
    env.expect_all_published().await;
}
