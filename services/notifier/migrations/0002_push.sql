-- Web Push: browsers' subscriptions and the push jobs staged with notifications.
-- Depends on nothing of 0001 (notifications, counts, preferences) nor on the runtime's tables
-- (offsets, outbox, stream: services/runtime/tables, applied after the service's own files):
-- it applies on a fresh schema as well as after 0001.

-- One row per endpoint (a browser profile's push resource). Upserted by endpoint: subscribing
-- again updates the keys and moves the endpoint to the subscribing user.
CREATE TABLE notifier.push_subscriptions (
    id              bigserial PRIMARY KEY,
    user_id         text NOT NULL,
    endpoint        text NOT NULL UNIQUE,
    -- scheme://host:port of the endpoint: the VAPID audience, and the unit of the worker's
    -- per-push-service concurrency cap.
    origin          text NOT NULL,
    -- The browser's ECDH public key (65-byte uncompressed P-256 point) and auth secret (16).
    p256dh          bytea NOT NULL CHECK (octet_length(p256dh) = 65),
    auth            bytea NOT NULL CHECK (octet_length(auth) = 16),
    -- PushSubscription.expirationTime; no push is staged for an expired subscription.
    expiration_time timestamptz,
    created_at      timestamptz NOT NULL,
    -- Last subscribe of this endpoint: a user over the limit loses the least recently renewed.
    updated_at      timestamptz NOT NULL
);
CREATE INDEX push_subscriptions_by_user ON notifier.push_subscriptions (user_id, updated_at);

-- One row per (notification, subscription): one HTTP request to make, retried on its own.
-- Staged in the transaction that stores the notification; deleted once delivered, gone,
-- failed or given up. The payload is the JSON to encrypt at send time (a fresh key per try).
CREATE TABLE notifier.push_jobs (
    id              bigserial PRIMARY KEY,
    user_id         text NOT NULL,
    notification_id text NOT NULL,
    subscription_id bigint NOT NULL
        REFERENCES notifier.push_subscriptions (id) ON DELETE CASCADE,
    payload         bytea NOT NULL,
    ttl_s           integer NOT NULL CHECK (ttl_s > 0),
    urgency         text NOT NULL CHECK (urgency IN ('very-low', 'low', 'normal', 'high')),
    -- RFC 8030 Topic; a newer job of the same (user, topic) replaces one not yet sent.
    topic           text CHECK (length(topic) <= 32),
    staged_at       timestamptz NOT NULL,
    -- When the job may be claimed: now, a retry time, or the end of a claim's lease.
    due_at          timestamptz NOT NULL,
    -- Nothing is attempted after it (staged_at + the give-up bound).
    deadline        timestamptz NOT NULL,
    -- Failed attempts so far (the backoff's exponent).
    attempts        integer NOT NULL DEFAULT 0,
    -- The claim that is sending it; outcomes of an older claim (the job was restaged
    -- meanwhile) change nothing.
    claim           text,
    UNIQUE (notification_id, subscription_id)
);
CREATE INDEX push_jobs_due ON notifier.push_jobs (due_at);
CREATE INDEX push_jobs_by_user_topic ON notifier.push_jobs (user_id, topic)
    WHERE topic IS NOT NULL;
CREATE INDEX push_jobs_by_user ON notifier.push_jobs (user_id, notification_id);
CREATE INDEX push_jobs_by_subscription ON notifier.push_jobs (subscription_id);
