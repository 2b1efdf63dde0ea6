-- Groups with roles, rich messages (edits, deletions, reactions, replies), the conversation
-- list, history and full-text search; Row Level Security on every table a user's read touches.

-- Conversations: a group's title, a change counter for the facts that describe it, and the
-- time of the latest message (or of the creation) that conversations.list orders by.
ALTER TABLE chat.conversations
    ADD COLUMN title text,
    -- 1 when a group is created, +1 per change; 0 for direct conversations (never change).
    ADD COLUMN version bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_activity_at timestamptz;
UPDATE chat.conversations c
    SET last_activity_at = coalesce(
        (SELECT max(m.created_at) FROM chat.messages m WHERE m.conversation_id = c.id),
        c.created_at);
ALTER TABLE chat.conversations
    ALTER COLUMN last_activity_at SET NOT NULL,
    ALTER COLUMN last_activity_at SET DEFAULT now();

-- Members: admin or member. joined_at (0001) orders seniority: the longest-standing member
-- (earliest joined_at, then user id) succeeds the last admin.
ALTER TABLE chat.members
    ADD COLUMN role text NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member'));

-- Messages: their current state. A deletion empties body (and so the search vector, which is
-- generated from it). reactions is json, not jsonb: json keeps the order emoji were first used.
-- The search vector concatenates two configurations (docs/conversations.md measures why):
-- 'english' stems ("meetings" finds "meeting") and drops stop words; 'simple' keeps every word
-- as written, so a name that stemming would fold ("Wells" -> "well") still matches itself and
-- ranks an exact spelling above a stem-only match.
ALTER TABLE chat.messages
    ADD COLUMN reply_to text,
    ADD COLUMN edited_at timestamptz,
    ADD COLUMN deleted boolean NOT NULL DEFAULT false,
    ADD COLUMN reactions json NOT NULL DEFAULT '{}',
    ADD COLUMN search tsvector GENERATED ALWAYS AS (
        to_tsvector('english'::regconfig, body) || to_tsvector('simple'::regconfig, body)
    ) STORED;
CREATE INDEX messages_search ON chat.messages USING gin (search);

-- Stored stream frames name the message they carry (the runtime's streams call it the frame's
-- subject: services/runtime/tables/streams/0002) so that a deletion finds and rewrites every one
-- of them. Frames stored before get theirs here; this file runs before the runtime's tables,
-- hence the column is added here too (the runtime's migration adds it if missing, and its index).
ALTER TABLE chat.user_events ADD COLUMN IF NOT EXISTS subject text;
UPDATE chat.user_events SET subject = frame::jsonb -> 'message' ->> 'id'
    WHERE frame LIKE '{"type":"message.new",%';

-- Row Level Security on the reads that serve a user (conversations.list, history, search),
-- behind the service's own membership checks: as chat_reader with app.user_id set, only the
-- conversations the user is a member of NOW, their members and their messages are visible.
-- A policy on chat.members cannot read chat.members itself (that recursion is an error), so the
-- user's conversations come from a SECURITY DEFINER function running as the tables' owner.
CREATE FUNCTION chat.my_conversations() RETURNS SETOF text
    LANGUAGE sql STABLE SECURITY DEFINER ROWS 50
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT conversation_id FROM chat.members
        WHERE user_id = current_setting('app.user_id', true)
    $$;
REVOKE ALL ON FUNCTION chat.my_conversations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chat.my_conversations() TO chat_reader;

GRANT SELECT ON chat.conversations, chat.members, chat.messages TO chat_reader;
ALTER TABLE chat.conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.members ENABLE ROW LEVEL SECURITY;
ALTER TABLE chat.messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversations_of_member ON chat.conversations FOR SELECT TO chat_reader
    USING (id IN (SELECT chat.my_conversations()));
CREATE POLICY members_of_shared ON chat.members FOR SELECT TO chat_reader
    USING (conversation_id IN (SELECT chat.my_conversations()));
CREATE POLICY messages_of_member ON chat.messages FOR SELECT TO chat_reader
    USING (conversation_id IN (SELECT chat.my_conversations()));

-- Search candidates. Under Row Level Security Postgres only uses an index for operators that
-- are LEAKPROOF, and the text match operator (@@) is not: as chat_reader, a search would read
-- every message of the table. This function runs as the tables' owner, restricted by the same
-- rule as the policies (the caller's conversations now); the caller then reads the messages it
-- returns under RLS like any other read. Two ways to find them, by the volume of the caller's
-- conversations (their messages, counted by seq): up to 5,000, read them all through the
-- (conversation, seq) index and test each, which costs less than the search index's bitmap of
-- a common word over the whole table; beyond, AND that bitmap with the conversations' one.
CREATE FUNCTION chat.search_hits(query tsquery, only_conversation text, max_hits integer)
    RETURNS TABLE (message_id text, rank real)
    LANGUAGE plpgsql STABLE SECURITY DEFINER ROWS 20
    SET search_path = pg_catalog, pg_temp
    AS $$
    DECLARE
        mine text[];
        volume bigint;
    BEGIN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(sum(c.last_seq), 0)
            INTO mine, volume
            FROM chat.conversations c
            WHERE c.id IN (SELECT chat.my_conversations())
              AND (only_conversation IS NULL OR c.id = only_conversation);
        IF volume <= 5000 THEN
            RETURN QUERY
                WITH candidates AS MATERIALIZED (
                    SELECT m.id, m.search, m.created_at FROM chat.messages m
                    WHERE m.conversation_id = ANY (mine))
                SELECT x.id, ts_rank(x.search, query) FROM candidates x
                WHERE x.search @@ query
                ORDER BY 2 DESC, x.created_at DESC, x.id LIMIT max_hits;
        ELSE
            RETURN QUERY
                SELECT m.id, ts_rank(m.search, query) FROM chat.messages m
                WHERE m.conversation_id = ANY (mine) AND m.search @@ query
                ORDER BY 2 DESC, m.created_at DESC, m.id LIMIT max_hits;
        END IF;
    END
    $$;
REVOKE ALL ON FUNCTION chat.search_hits(tsquery, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION chat.search_hits(tsquery, text, integer) TO chat_reader;
