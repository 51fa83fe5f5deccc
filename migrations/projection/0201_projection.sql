-- A projection's generations: its tables are partitioned by generation, readers and live
-- consumers use the current one, and a rebuild fills the next one and swaps it in.
CREATE TABLE projection_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);

INSERT INTO projection_state (generation) VALUES (1);

-- Which events each generation has applied: a duplicate has no second effect, and a live
-- batch that waited out a swap finds what the rebuild already applied.
CREATE TABLE projection_applied (
    generation bigint NOT NULL,
    event_id   uuid   NOT NULL,
    PRIMARY KEY (generation, event_id)
) PARTITION BY LIST (generation);
