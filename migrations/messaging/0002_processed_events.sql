-- Which events each consumer has applied. Written in the same transaction as the effect, so a
-- redelivered or re-published event has no second effect.
CREATE TABLE processed_events (
    consumer     text        NOT NULL,
    event_id     uuid        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
