-- The correlation id of the request that claimed a key: a repeated request is answered with it,
-- since the task's events carry it.
ALTER TABLE idempotency_keys ADD COLUMN correlation_id uuid;
