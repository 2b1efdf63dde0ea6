-- Groups change members: the latest version of each conversation's membership fact applied, so
-- that a fact older than one already applied (the chat outbox relay may publish it late) is
-- ignored rather than undoing a newer change.
CREATE TABLE presence.conversations (
    conversation_id text PRIMARY KEY,
    version         bigint NOT NULL
);
