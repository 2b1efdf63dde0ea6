-- Each partition's next offset per consumer group (services/runtime/offsets.py).
-- IF NOT EXISTS: chat and presence created this table in their own first migration, before
-- the runtime owned it; for them this migration only records that it exists.
CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
