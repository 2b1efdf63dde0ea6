-- Notifier schema: notifications and each user's unread count, preferences and mutes, and what
-- the notifier remembers to decide (conversations read, applications' latest status, users'
-- connectivity). The runtime adds its own tables to this schema (services/runtime/tables:
-- consumer offsets, the outbox, the notifications stream and its reader role, inbound event
-- keys); Web Push is 0002.

CREATE TABLE notifier.notifications (
    user_id          text NOT NULL,
    id               text NOT NULL,
    kind             text NOT NULL,
    title            text NOT NULL,
    body             text NOT NULL,
    data             jsonb NOT NULL,
    created_at       timestamptz NOT NULL,
    -- Seq of its latest notification.new in the user's stream: the bell's order, newest first
    -- (an update in place moves it to the top, as it does on a live client).
    position         bigint NOT NULL,
    read_at          timestamptz,
    -- message notifications: the conversation they coalesce, and the conversation seq of the
    -- latest message they cover (a message at or below it is a repeat).
    conversation_id  text,
    last_message_seq bigint,
    PRIMARY KEY (user_id, id),
    -- At most one unread message notification per conversation (protocol.md, part 2). Checked
    -- at commit: one statement may read a conversation's notification and open its next one.
    CONSTRAINT one_unread_per_conversation EXCLUDE USING btree
        (user_id WITH =, conversation_id WITH =)
        WHERE (kind = 'message' AND read_at IS NULL) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX notifications_by_position ON notifier.notifications (user_id, position DESC);
CREATE INDEX notifications_unread ON notifier.notifications (user_id, position DESC)
    WHERE read_at IS NULL;
CREATE INDEX notifications_by_conversation
    ON notifier.notifications (user_id, conversation_id, last_message_seq DESC)
    WHERE conversation_id IS NOT NULL;

-- Each user's unread count, moved in the statement that changes the rows, by a transaction
-- holding the user's stream row lock (services/notifier/storage.py): it equals the number of
-- unread notifications whatever the order of concurrent writers.
CREATE TABLE notifier.inbox (
    user_id text PRIMARY KEY,
    unread  integer NOT NULL CHECK (unread >= 0)
);

-- Preferences that differ from the defaults (everything on) are stored; kinds may be added.
CREATE TABLE notifier.preferences (
    user_id text NOT NULL,
    kind    text NOT NULL,
    in_app  boolean NOT NULL,
    push    boolean NOT NULL,
    PRIMARY KEY (user_id, kind)
);

CREATE TABLE notifier.mutes (
    user_id         text NOT NULL,
    conversation_id text NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

-- The highest conversation seq each member has read (chat.watermark.moved): a message at or
-- below it makes no notification, even if its fact arrives late.
CREATE TABLE notifier.conversation_reads (
    user_id         text NOT NULL,
    conversation_id text NOT NULL,
    read_seq        bigint NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

-- The latest status applied per application: an event whose changed_at is not after it is late.
CREATE TABLE notifier.applications (
    application_id text PRIMARY KEY,
    changed_at     timestamptz NOT NULL,
    status         text NOT NULL
);

-- Presence's latest connectivity fact per user (presence.connectivity.v1): Web Push goes to
-- users without a live connection. No row: never seen connected.
CREATE TABLE notifier.connectivity (
    user_id    text PRIMARY KEY,
    connected  boolean NOT NULL,
    changed_at timestamptz NOT NULL
);

-- Reads that serve a user (the bell's list, preferences) run as notifier_reader with
-- app.user_id set: Row Level Security hides every other user's rows whatever the query says.
-- The role is the one the runtime's stream tables grant (applied after this file).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'notifier_reader') THEN
        CREATE ROLE notifier_reader NOLOGIN;
    END IF;
END
$$;
GRANT notifier_reader TO CURRENT_USER;
GRANT USAGE ON SCHEMA notifier TO notifier_reader;
GRANT SELECT ON notifier.notifications, notifier.inbox, notifier.preferences, notifier.mutes
    TO notifier_reader;
ALTER TABLE notifier.notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifier.inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifier.preferences ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifier.mutes ENABLE ROW LEVEL SECURITY;
CREATE POLICY notifications_owner ON notifier.notifications FOR SELECT TO notifier_reader
    USING (user_id = current_setting('app.user_id', true));
CREATE POLICY inbox_owner ON notifier.inbox FOR SELECT TO notifier_reader
    USING (user_id = current_setting('app.user_id', true));
CREATE POLICY preferences_owner ON notifier.preferences FOR SELECT TO notifier_reader
    USING (user_id = current_setting('app.user_id', true));
CREATE POLICY mutes_owner ON notifier.mutes FOR SELECT TO notifier_reader
    USING (user_id = current_setting('app.user_id', true));
