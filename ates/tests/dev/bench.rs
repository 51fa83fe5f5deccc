//! `ates bench system` runs end to end and reports every figure it promises (the figures
//! themselves are for BENCHMARKS.md, not asserted here).

use std::process::Command;

#[tokio::test]
async fn the_system_benchmark_reports_every_figure_and_leaves_the_ledger_consistent() {
    let _one_at_a_time = crate::ONE_AT_A_TIME.lock().await;
    let output = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_ates"))
            .args(["bench", "system", "--rate", "20", "--duration", "3s", "--backlog", "2000", "--json"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ates bench system failed:\n{printed}\n{errors}");
    let figures: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    for key in [
        "offered_tasks_per_s",
        "create_per_s",
        "create_p99_ms",
        "freshness_p50_ms",
        "freshness_p99_ms",
        "accounting_drain_events_per_s",
        "backlog_1m_drain_s",
        "raw_insert_rows_per_s",
        "raw_commit_tx_per_s",
    ] {
        assert!(figures[key].is_number(), "{key} in {figures}");
    }
    for service in ["ates-auth", "ates-task-tracker", "ates-accounting", "ates-analytics"] {
        assert!(
            figures["rss_mib"][service].as_u64().is_some_and(|mib| mib > 0),
            "{service}'s memory in {figures}"
        );
    }
    for measurement in ["wal_load", "wal_drain"] {
        let wal = &figures[measurement];
        assert!(wal["bytes"].as_u64().is_some_and(|bytes| bytes > 0), "{measurement} in {figures}");
        assert!(wal["bytes_each"].as_f64().is_some_and(|each| each > 0.0), "{measurement} in {figures}");
        for count in ["full_page_images", "checkpoints"] {
            assert!(wal[count].is_u64(), "{measurement}.{count} in {figures}");
        }
    }
    assert_eq!(figures["invariants_hold"], true, "{printed}");
    assert!(figures["create_per_s"].as_u64().unwrap() > 0, "tasks were created: {printed}");
    assert!(printed.contains("machine: "), "it says what it ran on: {printed}");
}
