-- The W3C trace context of what caused each event (a request or a consumed event), sent as the
-- NATS `traceparent` header so a trace continues across services. Set only while traces are
-- exported (OTEL_EXPORTER_OTLP_ENDPOINT).
ALTER TABLE outbox ADD COLUMN traceparent text;
