-- What a stored frame carries (chat: the id of the message in it), so that the frames of a
-- subject can be found and rewritten in place (services/runtime/streams.py, Stream.rewrite).
-- IF NOT EXISTS: chat added the column in its own migration 0002 (which runs before this one)
-- to fill it for the frames it had already stored.
ALTER TABLE {schema}.user_events ADD COLUMN IF NOT EXISTS subject text;
CREATE INDEX IF NOT EXISTS user_events_by_subject ON {schema}.user_events (subject)
    WHERE subject IS NOT NULL;
