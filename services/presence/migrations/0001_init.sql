-- Presence service schema: per-user presence, live connections, gateway liveness, the
-- memberships it learns from chat.conversations.v1 (who shares a conversation with whom),
-- consumer offsets and the outbox. Typing indicators are never stored.

CREATE TABLE presence.users (
    user_id               text PRIMARY KEY,
    chosen                text NOT NULL CHECK (chosen IN ('online', 'away', 'busy', 'offline')),
    shown                 text NOT NULL CHECK (shown IN ('online', 'away', 'busy', 'offline')),
    last_seen             timestamptz,
    offline_pending_since timestamptz,
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_pending ON presence.users (offline_pending_since)
    WHERE offline_pending_since IS NOT NULL;

CREATE TABLE presence.connections (
    connection_id text PRIMARY KEY,
    user_id       text NOT NULL,
    gateway_id    text NOT NULL,
    opened_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX connections_by_user ON presence.connections (user_id);
CREATE INDEX connections_by_gateway ON presence.connections (gateway_id);

CREATE TABLE presence.gateways (
    gateway_id     text PRIMARY KEY,
    last_heartbeat timestamptz NOT NULL
);

CREATE TABLE presence.memberships (
    conversation_id text NOT NULL,
    user_id         text NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX memberships_by_user ON presence.memberships (user_id);

CREATE TABLE presence.consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE presence.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Reads that serve a user (snapshot after hello, the HTTP read API) run as presence_reader
-- with app.user_id set: Row Level Security shows only users who share a conversation with
-- the requester, even if the service's own query forgot to filter.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'presence_reader') THEN
        CREATE ROLE presence_reader NOLOGIN;
    END IF;
END
$$;
GRANT presence_reader TO CURRENT_USER;
GRANT USAGE ON SCHEMA presence TO presence_reader;
GRANT SELECT ON presence.users, presence.memberships TO presence_reader;
ALTER TABLE presence.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_shared_conversation ON presence.users FOR SELECT TO presence_reader
    USING (user_id IN (
        SELECT theirs.user_id
        FROM presence.memberships mine
        JOIN presence.memberships theirs USING (conversation_id)
        WHERE mine.user_id = current_setting('app.user_id', true)
          AND theirs.user_id <> mine.user_id
    ));
