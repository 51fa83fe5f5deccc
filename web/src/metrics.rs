//! The process-wide Prometheus recorder, and the one list of what aTES exports.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// What kind of Prometheus metric it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One metric aTES exports: the README's table, the alert rules and the dashboard use these
/// names (a test checks them against this list).
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric { name, kind, labels, help }
}

/// Every metric, with what it measures.
pub const METRICS: &[Metric] = &[
    metric("http_requests_total", Kind::Counter, &["method", "path", "status"], "HTTP requests answered"),
    metric(
        "http_requests_shed_total",
        Kind::Counter,
        &[],
        "HTTP requests refused with 503 because the service was handling as many as it may at once",
    ),
    metric("http_request_duration_seconds", Kind::Histogram, &["method", "path"], "HTTP request duration"),
    metric("ates_outbox_pending", Kind::Gauge, &["service"], "Outbox rows committed but not yet published"),
    metric(
        "ates_outbox_oldest_pending_seconds",
        Kind::Gauge,
        &["service"],
        "Age of the oldest unpublished outbox row (0 when none)",
    ),
    metric(
        "ates_outbox_republished_total",
        Kind::Counter,
        &["stream"],
        "Events the outbox auditor found missing from their stream and published again",
    ),
    metric(
        "ates_consumer_pending",
        Kind::Gauge,
        &["consumer"],
        "Messages of a durable consumer not yet acknowledged (not delivered plus awaiting an ack)",
    ),
    metric(
        "ates_consumer_events_total",
        Kind::Counter,
        &["consumer", "outcome"],
        "Events a consumer applied (outcome=applied) or had applied before (outcome=duplicate)",
    ),
    metric("ates_consumer_batch_size", Kind::Histogram, &["consumer"], "Messages per consumer batch"),
    metric(
        "ates_consumer_batch_splits_total",
        Kind::Counter,
        &["consumer"],
        "Times events failed together in one transaction and a consumer tried them again in parts",
    ),
    metric(
        "ates_consumer_restarts_total",
        Kind::Counter,
        &["consumer"],
        "Times a consumer found its stream had lost what it had been given, and started again from before it",
    ),
    metric("ates_dlq_messages", Kind::Gauge, &["consumer"], "Messages parked on dlq.<consumer>"),
    metric("ates_stream_messages", Kind::Gauge, &["stream"], "Messages a JetStream stream holds"),
    metric(
        "ates_billing_last_closed_day_age_days",
        Kind::Gauge,
        &[],
        "Days from the last closed billing day to today (1 once yesterday is closed)",
    ),
    metric("ates_tasks_created_total", Kind::Counter, &[], "Tasks created"),
    metric("ates_tasks_completed_total", Kind::Counter, &[], "Tasks completed"),
    metric("ates_tasks_reassigned_total", Kind::Counter, &[], "Tasks reassigned by a shuffle"),
    metric("ates_auth_logins_total", Kind::Counter, &["outcome"], "Sign-in attempts by outcome"),
    metric(
        "ates_auth_password_hashes_refused_total",
        Kind::Counter,
        &[],
        "Password checks refused with 503 because too many were waiting",
    ),
];

/// The handle of the Prometheus recorder, installed on first use with the help text of every
/// metric. Several services in one process (`ates dev`, tests) share it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .install_recorder()
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder().handle());
        for metric in METRICS {
            match metric.kind {
                Kind::Counter => metrics::describe_counter!(metric.name, metric.help),
                Kind::Gauge => metrics::describe_gauge!(metric.name, metric.help),
                Kind::Histogram => metrics::describe_histogram!(metric.name, metric.help),
            }
        }
        handle
    })
}
