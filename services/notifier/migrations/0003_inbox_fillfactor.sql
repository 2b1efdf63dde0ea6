-- Every change to a user's notifications rewrites the user's unread count row: room on each
-- page keeps those rewrites heap-only (no new primary key entry), as for the stream rows
-- (services/runtime/tables/streams/0003). Applies to pages filled from now on.
ALTER TABLE notifier.inbox SET (fillfactor = 50);
