-- The outbox as a queue (BENCHMARKS.md, "What the drain writes"), made from the migrated one:
-- unpublished rows are found through a narrow pending row each, and the "published" mark is a
-- narrow row of its own, so the outbox row is never updated. Run after migrations/messaging/*.sql.
DROP INDEX outbox_unpublished, outbox_published;
ALTER TABLE outbox DROP COLUMN published_at, DROP COLUMN stream_seq;
CREATE TABLE outbox_pending (id bigint PRIMARY KEY);
CREATE TABLE outbox_marks (id bigint PRIMARY KEY, stream_seq bigint NOT NULL, published_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX outbox_marks_published ON outbox_marks (published_at);
