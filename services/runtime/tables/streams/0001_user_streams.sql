-- The per-user durable stream of the owning service (services/runtime/streams.py): the last
-- seq handed out per user, and every durable frame by (user, seq), which sync replays.
-- IF NOT EXISTS and the guarded role and policy: chat created all of this in its own first
-- migration, before the runtime owned it; for chat this migration only records that it exists.
CREATE TABLE IF NOT EXISTS {schema}.user_streams (
    user_id   text PRIMARY KEY,
    last_seq  bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS {schema}.user_events (
    user_id     text NOT NULL,
    seq         bigint NOT NULL,
    -- The frame exactly as pushed live (JSON text), so sync replays it byte for byte.
    frame       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);

-- Reads that serve a user run as {reader} with app.user_id set: Row Level Security makes
-- another user's frames invisible even if the service's own checks had a bug.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{reader}') THEN
        CREATE ROLE {reader} NOLOGIN;
    END IF;
END
$$;
GRANT {reader} TO CURRENT_USER;
GRANT USAGE ON SCHEMA {schema} TO {reader};
GRANT SELECT ON {schema}.user_events TO {reader};
ALTER TABLE {schema}.user_events ENABLE ROW LEVEL SECURITY;
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_policies
        WHERE schemaname = '{schema}' AND tablename = 'user_events'
          AND policyname = 'user_events_owner'
    ) THEN
        CREATE POLICY user_events_owner ON {schema}.user_events FOR SELECT TO {reader}
            USING (user_id = current_setting('app.user_id', true));
    END IF;
END
$$;
