-- One relay round for `pgbench -n -t 600 -c 1 -f` (BENCHMARKS.md, "What the drain writes"): 500 outbox rows written, then claimed and marked published. Against a scratch database with migrations/messaging/*.sql applied (and outbox-queue-schema.sql for the queue).
WITH o AS (INSERT INTO outbox (event_id, subject, payload) SELECT gen_random_uuid(), 'accounting.transaction_applied', convert_to(repeat(md5(random()::text), 14), 'UTF8') FROM generate_series(1,500) RETURNING id)
INSERT INTO outbox_pending SELECT id FROM o;
BEGIN;
CREATE TEMP TABLE IF NOT EXISTS c (id bigint, l int);
TRUNCATE c;
INSERT INTO c SELECT p.id, length(o.payload) FROM (SELECT id FROM outbox_pending ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED) p JOIN outbox o USING (id);
DELETE FROM outbox_pending USING c WHERE outbox_pending.id = c.id;
INSERT INTO outbox_marks (id, stream_seq) SELECT id, id FROM c;
COMMIT;
