-- A row holds every record of a transaction: a job alert's batch stages 10,000 delivery
-- records, ~7 MB of payloads. TOAST compressed that array with pglz (the local server has no
-- lz4), which cost the statement about as much as its other work (76 ms of backend CPU per
-- 10,000 records instead of 33 ms, docs/performance.md) for rows that live a few milliseconds.
-- Stored out of line as they are; applies to rows written from now on.
ALTER TABLE {schema}.outbox ALTER COLUMN payloads SET STORAGE EXTERNAL;
ALTER TABLE {schema}.outbox ALTER COLUMN keys SET STORAGE EXTERNAL;
