-- One row per transaction instead of one per record: the records a batch staged, in order, as
-- arrays (services/runtime/outbox.py). Under load a chat batch stages hundreds of records;
-- writing, and deleting after publication, one row instead of hundreds is most of the outbox's
-- cost in Postgres. Rows a previous version left become rows of one record each.
ALTER TABLE {schema}.outbox
    ADD COLUMN topics text[],
    ADD COLUMN keys bytea[],
    ADD COLUMN payloads bytea[],
    ADD COLUMN header_sets jsonb[];
UPDATE {schema}.outbox
    SET topics = ARRAY[topic], keys = ARRAY[key], payloads = ARRAY[value],
        header_sets = ARRAY[headers];
ALTER TABLE {schema}.outbox
    DROP COLUMN topic,
    DROP COLUMN key,
    DROP COLUMN value,
    DROP COLUMN headers;
ALTER TABLE {schema}.outbox RENAME COLUMN header_sets TO headers;
ALTER TABLE {schema}.outbox
    ALTER COLUMN topics SET NOT NULL,
    ALTER COLUMN keys SET NOT NULL,
    ALTER COLUMN payloads SET NOT NULL,
    ALTER COLUMN headers SET NOT NULL;
