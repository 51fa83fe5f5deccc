//! Self-repair: when JetStream loses messages it had acknowledged (a power loss before fsync, a
//! stream deleted by mistake), the auditor finds them by their recorded stream sequence and the
//! relay publishes them again from the outbox; consumers apply each event exactly once.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use ates_messaging::outbox::{AuditSettings, Auditor};
use ates_messaging::streams::StreamSettings;
use ates_messaging::{Relay, RelaySettings};
use ates_testkit::eventually;

use crate::support::{Effects, Env, OUTBOX, SCHEMA, completed};

pub(crate) fn audit_settings() -> AuditSettings {
    AuditSettings {
        stream: "TASKS",
        streams: StreamSettings::default(),
        interval: Duration::from_millis(200),
        margin: Duration::from_secs(300),
        reader: "audit-test".into(),
    }
}

/// The relay with its auditor beside it, as every producing service runs it.
fn auditing_relay(env: &Env) -> Relay {
    let settings = RelaySettings { audit: Some(audit_settings()), ..env.relay_settings() };
    Relay::new(env.pool.clone(), env.js.clone(), SCHEMA, settings)
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// Waits until the stream holds exactly the events `ids`, each once.
pub(crate) async fn expect_stream_holds(env: &Env, ids: &[uuid::Uuid]) {
    let expected: HashSet<_> = ids.iter().copied().collect();
    eventually("the stream to hold every event once", || async {
        env.js.get_stream("TASKS").await.ok()?;
        let contents = env.stream_contents("TASKS").await;
        let held: HashSet<_> = contents.iter().filter_map(|(_, id)| *id).collect();
        (contents.len() == ids.len() && held == expected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_lost_tail_is_found_by_sequence_and_published_again_once() {
    let _one_at_a_time = crate::support::SERVER_FAULTS.lock().await;
    let mut env = Env::start().await;
    env.spawn_relay();
    let effects = Effects::new("effects");
    env.spawn_consumer(&effects);
    let auditor = Auditor::new(env.pool.clone(), env.js.clone(), SCHEMA, audit_settings());

    let mut ids = env.commit_events(300).await;
    env.expect_effects_exactly_once(300).await;
    assert_eq!(auditor.audit().await.unwrap().lost, 0, "nothing is lost yet");

    // A copy of the stream as it is on disk now; then 200 more events are acknowledged and
    // applied, and the server comes back with only the copy: the tail it acknowledged is gone,
    // as after a power loss before it reached the disk.
    let kept = keep(&mut env, Kept::Everything).await;
    ids.extend(env.commit_events(200).await);
    env.expect_effects_exactly_once(500).await;
    put_back(&mut env, &kept).await;
    env.nats().restart().await;
    assert_eq!(env.stream_messages("TASKS").await, 300, "the stream lost its tail");

    let report =
        eventually("an audit that reaches the stream", || async { auditor.audit().await.ok() }).await;
    assert_eq!(report.lost, 200, "the auditor finds exactly the lost tail: {report:?}");
    assert!(!report.recreated);

    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(500).await;
    let again = auditor.audit().await.unwrap();
    assert_eq!(again.lost, 0, "once published again, nothing is missing: {again:?}");
    env.expect_all_published().await;
}

#[tokio::test]
async fn a_deleted_stream_is_made_again_and_refilled_by_the_auditor_on_its_own() {
    let (_one_at_a_time, mut env, mut ids) = applied_events(300).await;

    // The stream's whole directory goes (its durable consumer with it).
    let stream_dir = env.nats().stream_dir("TASKS");
    env.nats().stop().await;
    std::fs::remove_dir_all(&stream_dir).unwrap();
    env.nats().restart().await;

    expect_stream_holds(&env, &ids).await;
    ids.extend(env.commit_events(50).await);
    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(350).await;
    eventually("the consumer to have acked everything", || async {
        let stream = env.js.get_stream("TASKS").await.ok()?;
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(crate::support::CONSUMER).await.ok()?;
        let info = consumer.info().await.ok()?;
        (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
    })
    .await;
    env.expect_effects_exactly_once(350).await;
}

#[tokio::test]
async fn losing_the_newest_block_file_is_repaired_by_the_auditor_on_its_own() {
    let (_one_at_a_time, mut env, ids) = applied_events(300).await;

    let blocks = env.nats().stream_dir("TASKS").join("msgs");
    env.nats().stop().await;
    let newest = std::fs::read_dir(&blocks)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "blk"))
        .max_by_key(|path| path.file_stem().and_then(|s| s.to_str()?.parse::<u64>().ok()))
        .expect("the stream has a block file");
    std::fs::remove_file(&newest).unwrap();
    env.nats().restart().await;

    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(300).await;
    env.expect_all_published().await;
}

#[tokio::test]
async fn a_consumer_that_was_given_the_lost_tail_starts_again_and_misses_nothing() {
    lost_tail_then_new_events(200).await;
}

#[tokio::test]
async fn a_lost_tail_longer_than_a_batch_takes_back_its_sequences_before_anything_new() {
    // More than one relay batch is published again: the relay has a backlog, and must still not
    // publish the new events (from the newest end) into the lost sequences.
    lost_tail_then_new_events(1200).await;
}

/// 300 events applied, then `lost` more applied that the stream loses on a restart; then 100
/// new ones. The consumer, given the lost sequences before, must end with every event once.
async fn lost_tail_then_new_events(lost: usize) {
    let (_one_at_a_time, mut env, mut ids) = applied_events(300).await;

    let kept = keep(&mut env, Kept::Messages).await;
    ids.extend(env.commit_events(lost).await);
    let applied = i64::try_from(300 + lost).unwrap();
    env.expect_effects_exactly_once(applied).await;
    put_back(&mut env, &kept).await;
    env.nats().restart().await;

    // New events come next: the relay holds them back until the auditor, which runs first after
    // every reconnection, has the lost ones published again into the sequences they had.
    ids.extend(env.commit_events(100).await);
    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(applied + 100).await;
}

#[tokio::test]
async fn lost_events_go_back_into_their_sequences_before_events_committed_out_of_id_order() {
    let (_one_at_a_time, mut env, mut ids) = applied_events(300).await;
    let kept = keep(&mut env, Kept::Messages).await;

    // A transaction takes its outbox ids first and commits last: after a later one's events
    // were published, applied, and lost with the stream's tail.
    let earlier: Vec<_> = (0..200).map(|_| completed()).collect();
    let mut open = env.pool.begin().await.unwrap();
    OUTBOX.add_all(&mut open, &earlier).await.unwrap();
    let later = env.commit_events(200).await;
    env.expect_effects_exactly_once(500).await;
    // Applied is not yet marked published: the relay marks its rows after the acks.
    env.expect_all_published().await;
    let sequences = stream_sequences(&env, &later).await;
    put_back(&mut env, &kept).await;
    open.commit().await.unwrap();
    env.nats().restart().await;

    ids.extend(&later);
    ids.extend(earlier.iter().map(|e| e.event_id));
    ids.extend(env.commit_events(100).await);
    expect_stream_holds(&env, &ids).await;
    assert_eq!(
        stream_sequences(&env, &later).await,
        sequences,
        "the lost events are back at the sequences the consumer was given them at"
    );
    // The consumer skips those sequences; had the earlier transaction's events (lower ids, never
    // published) taken them, it would never apply them.
    env.expect_effects_exactly_once(800).await;
}

#[tokio::test]
async fn an_instance_whose_audit_waits_for_another_publishes_nothing_into_the_lost_sequences() {
    let (_one_at_a_time, mut env, mut ids) = applied_events(300).await;
    let kept = keep(&mut env, Kept::Messages).await;
    ids.extend(env.commit_events(200).await);
    env.expect_effects_exactly_once(500).await;
    put_back(&mut env, &kept).await;

    // Another instance is auditing the schema when this one reconnects.
    let mut other = env.pool.begin().await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("ates_outbox_audit_{SCHEMA}"))
        .execute(&mut *other)
        .await
        .unwrap();
    env.nats().restart().await;
    let new = env.commit_events(100).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        stream_sequences(&env, &new).await.iter().all(Option::is_none),
        "the relay published before its own audit, into the sequences the stream lost"
    );

    // The other audit ends without marking anything; this instance's audit then finds the tail.
    other.commit().await.unwrap();
    ids.extend(&new);
    expect_stream_holds(&env, &ids).await;
    env.expect_effects_exactly_once(600).await;
}

/// Where the stream holds each of `ids`, as the outbox recorded it.
pub(crate) async fn stream_sequences(env: &Env, ids: &[uuid::Uuid]) -> Vec<Option<i64>> {
    let mut sequences = Vec::with_capacity(ids.len());
    for id in ids {
        let sequence: Option<i64> = sqlx::query_scalar("SELECT stream_seq FROM outbox WHERE event_id = $1")
            .bind(id)
            .fetch_one(&env.pool)
            .await
            .unwrap();
        sequences.push(sequence);
    }
    sequences
}

/// A relay with its auditor and a consumer at work, and `count` events applied. Holds the lock
/// of the tests that stop and start the server.
pub(crate) async fn applied_events(
    count: usize,
) -> (tokio::sync::MutexGuard<'static, ()>, Env, Vec<uuid::Uuid>) {
    let one_at_a_time = crate::support::SERVER_FAULTS.lock().await;
    let env = Env::start().await;
    tokio::spawn(auditing_relay(&env).run(env.shutdown.child_token()));
    env.spawn_consumer(&Effects::new("effects"));
    let ids = env.commit_events(count).await;
    env.expect_effects_exactly_once(i64::try_from(count).unwrap()).await;
    (one_at_a_time, env, ids)
}

/// What of the stream's directory a test keeps and puts back.
pub(crate) enum Kept {
    /// Messages and consumers' state: the server comes back as it was.
    Everything,
    /// Only the messages: the consumers' own state goes on, so they were given and acknowledged
    /// messages the stream no longer has.
    Messages,
}

/// A copy of part of the stream's directory as it is on disk now (the server is stopped to
/// take it): where it came from, and the copy.
pub(crate) async fn keep(env: &mut Env, part: Kept) -> (std::path::PathBuf, tempfile::TempDir) {
    let stream_dir = env.nats().stream_dir("TASKS");
    let dir = match part {
        Kept::Everything => stream_dir,
        Kept::Messages => stream_dir.join("msgs"),
    };
    let copy = tempfile::tempdir().unwrap();
    env.nats().stop().await;
    copy_dir(&dir, copy.path());
    env.nats().restart().await;
    (dir, copy)
}

/// Stops the server and puts back what was `kept`: the stream loses everything it acknowledged
/// since, as after a power loss before it reached the disk. The server stays stopped.
pub(crate) async fn put_back(env: &mut Env, (dir, copy): &(std::path::PathBuf, tempfile::TempDir)) {
    env.nats().stop().await;
    std::fs::remove_dir_all(dir).unwrap();
    copy_dir(&copy.path().join(dir.file_name().unwrap()), dir.parent().unwrap());
}

#[tokio::test]
async fn rows_another_instance_marked_lost_are_published_again_by_this_one() {
    let env = Env::start().await;
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();
    env.spawn_relay();
    env.commit_events(10).await;
    env.expect_all_published().await;

    // Another instance's auditor marks rows (nothing in this process hears of it); this relay
    // looks for such rows now and then, not in every round.
    let marked = sqlx::query(
        "UPDATE outbox SET lost_seq = stream_seq, stream_seq = NULL, published_at = NULL
         WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 3)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    assert_eq!(marked.rows_affected(), 3);
    env.expect_all_published().await;
    let sequences: Vec<i64> = sqlx::query_scalar("SELECT stream_seq FROM outbox ORDER BY id LIMIT 3")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(sequences, [1, 2, 3], "the stream still had them: the repeats were dropped as duplicates");
}

#[tokio::test]
async fn a_lost_row_held_by_a_transaction_that_does_not_end_does_not_stop_the_outbox() {
    let env = Env::start().await;
    env.commit_events(10).await;
    env.relay().publish_pending().await.unwrap();
    sqlx::query(
        "UPDATE outbox SET lost_seq = stream_seq, stream_seq = NULL, published_at = NULL
         WHERE id = (SELECT min(id) FROM outbox)",
    )
    .execute(&env.pool)
    .await
    .unwrap();
    // A relay that hung mid-round holds the lost row.
    let mut hung = env.pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM outbox WHERE lost_seq IS NOT NULL FOR UPDATE")
        .execute(&mut *hung)
        .await
        .unwrap();
    let settings = RelaySettings { lost_lock_wait: Duration::from_secs(1), ..env.relay_settings() };
    tokio::spawn(
        Relay::new(env.pool.clone(), env.js.clone(), SCHEMA, settings).run(env.shutdown.child_token()),
    );

    env.commit_events(50).await;
    eventually("everything but the held row published", || async {
        (env.unpublished().await == 1).then_some(())
    })
    .await;
    hung.rollback().await.unwrap();
    env.expect_all_published().await;
}
