-- CloudEvents (source, id) of inbound events already applied, so a publisher's retry applies
-- nothing twice (services/runtime/inbound.py). Rows older than the retention are pruned.
CREATE TABLE {schema}.inbound_events (
    source   text NOT NULL,
    id       text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, id)
);
CREATE INDEX inbound_events_seen_at ON {schema}.inbound_events (seen_at);
