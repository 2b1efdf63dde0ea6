-- Records staged in a transaction, published after it committed (services/runtime/outbox.py).
-- IF NOT EXISTS: chat and presence created this table in their own first migration, before
-- the runtime owned it; for them this migration only records that it exists.
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
