-- Where the stream had an event before it lost it. The auditor keeps the sequence here when it
-- marks the row for publishing again; relays publish such rows before any other, in this order,
-- so lost events take back the sequences they had even when they were first published out of
-- id order (a backlog from both ends, transactions committing out of id order).
ALTER TABLE outbox ADD COLUMN lost_seq bigint;

CREATE INDEX outbox_lost ON outbox (lost_seq) WHERE lost_seq IS NOT NULL;
