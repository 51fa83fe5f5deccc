-- Where JetStream stored each published event (its stream sequence, from the publish ack), so
-- the auditor can tell whether the stream still has it.
ALTER TABLE outbox ADD COLUMN stream_seq bigint;

-- What the auditor last saw of each stream this outbox publishes to: a stream created at
-- another time was deleted and made again, and lost everything it had.
CREATE TABLE outbox_audit (
    stream     text        PRIMARY KEY,
    created    timestamptz NOT NULL,
    audited_at timestamptz NOT NULL
);
