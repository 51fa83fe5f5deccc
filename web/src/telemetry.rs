//! Logs, and OpenTelemetry traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (off by default).
//!
//! With tracing on, spans go to that collector over OTLP/HTTP (protobuf, or JSON with
//! `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`; the other `OTEL_*` settings of the exporter and the
//! batch processor apply), and the W3C trace context travels with the work: a request's
//! `traceparent` header becomes the parent of its span, each event recorded in the outbox keeps
//! the `traceparent` of what caused it, the relay sends it as a NATS header, and each consumer
//! applies the event in a span that continues that trace. So Jaeger or Tempo show one trace from
//! the request through every service it reached.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The W3C trace context header.
pub const TRACEPARENT: &str = "traceparent";

/// The tracer provider, once traces are exported; `None` when they are not.
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// Keeps the exporter running; dropping it at the end of `main` sends what is still buffered.
#[must_use = "traces still buffered are lost unless this lives until the process ends"]
pub struct Telemetry(());

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = PROVIDER.get()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("could not send the last traces: {e}");
        }
    }
}

/// Whether spans are exported (and trace context is worth carrying).
pub fn enabled() -> bool {
    PROVIDER.get().is_some()
}

/// Logs to stderr filtered by `RUST_LOG` (else `default_filter`), and exports the spans of
/// `service` when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (`OTEL_SERVICE_NAME` overrides the name).
pub fn init(service: &str, default_filter: &str) -> anyhow::Result<Telemetry> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| default_filter.into());
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter());
    let exported = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| !v.is_empty());
    let traces = if exported {
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
        let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| service.to_owned());
        let resource = opentelemetry_sdk::Resource::builder().with_service_name(name).build();
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        let tracer = provider.tracer("ates");
        let _ = PROVIDER.set(provider);
        // Traces get the spans at info and above, whatever the log filter says.
        let spans = EnvFilter::new("info");
        Some(tracing_opentelemetry::layer().with_tracer(tracer).with_filter(spans))
    } else {
        None
    };
    tracing_subscriber::registry().with(logs).with(traces).try_init()?;
    Ok(Telemetry(()))
}

/// The `traceparent` of `span`, when traces are exported and it belongs to one.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the current span, when traces are exported.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// Makes `span` continue the trace of `traceparent` (a W3C header value); nothing when traces
/// are not exported or the value is not a trace context.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    if !enabled() {
        return;
    }
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_endpoint_no_trace_context_is_made_or_carried() {
        assert!(!enabled());
        let span = tracing::info_span!("request");
        continue_trace(&span, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(current_traceparent(), None);
    }
}
