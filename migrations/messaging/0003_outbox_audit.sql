-- Where JetStream stored each published event (its stream sequence, from the publish ack), so
-- the auditor can tell whether the stream still has it.
ALTER TABLE outbox ADD COLUMN stream_seq bigint;

-- What the auditor last saw of each stream this outbox publishes to: a stream created at
-- another time was deleted and made again, and lost everything it had.
-- A stream whose first sequence jumped (without limits that drop messages), whose last went
-- back, or that is empty, lost more than the recent publishes: then every row is checked.
CREATE TABLE outbox_audit (
    stream     text        PRIMARY KEY,
    created    timestamptz NOT NULL,
    first_seq  bigint      NOT NULL,
    last_seq   bigint      NOT NULL,
    audited_at timestamptz NOT NULL
);

-- The auditor reads the rows published since its last audit.
CREATE INDEX outbox_published ON outbox (published_at) WHERE stream_seq IS NOT NULL;
