-- Where each durable consumer stands in its stream: the newest message it took, recorded before
-- it acknowledges any of it. On every (re)connection the consumer checks that the stream still
-- holds that event at that sequence, and starts again from before it when the stream lost it
-- (see messaging/src/consumer/position.rs).
CREATE TABLE consumer_positions (
    consumer text PRIMARY KEY,
    stream_created timestamptz NOT NULL,
    stream_seq bigint NOT NULL,
    message_id text,
    published_at timestamptz NOT NULL
);
