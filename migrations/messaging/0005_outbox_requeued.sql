-- The highest outbox id the auditor marked for publishing again (events the stream lost).
-- While any row up to it is unpublished, the relay publishes strictly oldest first: the lost
-- events must take back the sequences they had before anything newer is published.
ALTER TABLE outbox_audit ADD COLUMN requeued_up_to bigint NOT NULL DEFAULT 0;
