-- Relays no longer LISTEN: a service's own outbox writes wake its relays in process, and rows
-- another process wrote are found by polling. A notifying commit holds PostgreSQL's global
-- notify lock until its WAL is flushed, so every outbox commit in the cluster was serialised.
DROP TRIGGER outbox_notify ON outbox;
DROP FUNCTION outbox_notify();
