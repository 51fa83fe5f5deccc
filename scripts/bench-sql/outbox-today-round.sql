-- One relay round for `pgbench -n -t 600 -c 1 -f` (BENCHMARKS.md, "What the drain writes"): 500 outbox rows written, then claimed and marked published. Against a scratch database with migrations/messaging/*.sql applied (and outbox-queue-schema.sql for the queue).
INSERT INTO outbox (event_id, subject, payload) SELECT gen_random_uuid(), 'accounting.transaction_applied', convert_to(repeat(md5(random()::text), 14), 'UTF8') FROM generate_series(1,500);
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS c (id bigint, l int);
TRUNCATE c;
INSERT INTO c SELECT id, length(payload) FROM (SELECT id, payload FROM outbox WHERE published_at IS NULL AND lost_seq IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED) x;
UPDATE outbox SET published_at = now(), stream_seq = outbox.id, lost_seq = NULL FROM c WHERE outbox.id = c.id;
COMMIT;
