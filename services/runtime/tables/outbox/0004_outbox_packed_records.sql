-- A row's records packed into one byte string (services/runtime/outbox.py, pack_records):
-- four arrays of one element per record cost the client ~7 us and the server ~5 us per record
-- to encode and build (a job alert's 10,000 delivery records: ~70 ms of the notifier's Python
-- and ~45 ms of the backend's CPU, docs/performance.md); one bytea is a copy each side.
-- New rows hold `topics` (each topic once, the records name them by index) and `records`;
-- rows written before this hold `topics`, `keys`, `payloads` and `headers`, one element per
-- record, and the relay still publishes them.
ALTER TABLE {schema}.outbox ADD COLUMN records bytea;
ALTER TABLE {schema}.outbox ALTER COLUMN records SET STORAGE EXTERNAL;
ALTER TABLE {schema}.outbox
    ALTER COLUMN keys DROP NOT NULL,
    ALTER COLUMN payloads DROP NOT NULL,
    ALTER COLUMN headers DROP NOT NULL;
