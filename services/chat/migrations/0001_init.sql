-- Chat service schema: conversations, members with watermarks, messages, per-user durable
-- streams (what sync serves), consumer offsets and the outbox.

CREATE TABLE chat.conversations (
    id          text PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('direct', 'group')),
    -- Highest message seq allocated in this conversation.
    last_seq    bigint NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chat.members (
    conversation_id text NOT NULL REFERENCES chat.conversations (id),
    user_id         text NOT NULL,
    -- Watermarks: every message up to this seq is delivered / read by this member.
    delivered_seq   bigint NOT NULL DEFAULT 0,
    read_seq        bigint NOT NULL DEFAULT 0,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, user_id),
    CHECK (read_seq <= delivered_seq)
);
CREATE INDEX members_by_user ON chat.members (user_id);

CREATE TABLE chat.messages (
    id              text PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES chat.conversations (id),
    seq             bigint NOT NULL,
    sender_id       text NOT NULL,
    client_msg_id   text NOT NULL,
    kind            text NOT NULL,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL,
    UNIQUE (conversation_id, seq),
    -- The client's idempotency key: a resend finds the stored message.
    UNIQUE (sender_id, client_msg_id)
);

-- Per-user "chat" stream: the last seq handed out, and every durable frame by seq.
CREATE TABLE chat.user_streams (
    user_id   text PRIMARY KEY,
    last_seq  bigint NOT NULL
);
CREATE TABLE chat.user_events (
    user_id     text NOT NULL,
    seq         bigint NOT NULL,
    -- The frame exactly as pushed live (JSON text), so sync replays it byte for byte.
    frame       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);

CREATE TABLE chat.consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);

CREATE TABLE chat.outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea,
    value       bytea NOT NULL,
    headers     jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Reads that serve a user run as chat_reader with app.user_id set: Row Level Security makes
-- another user's frames invisible even if the service's own checks had a bug.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chat_reader') THEN
        CREATE ROLE chat_reader NOLOGIN;
    END IF;
END
$$;
GRANT chat_reader TO CURRENT_USER;
GRANT USAGE ON SCHEMA chat TO chat_reader;
GRANT SELECT ON chat.user_events TO chat_reader;
ALTER TABLE chat.user_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY user_events_owner ON chat.user_events FOR SELECT TO chat_reader
    USING (user_id = current_setting('app.user_id', true));
