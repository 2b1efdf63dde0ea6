"""Notifier service: notifications for new messages, job alerts and application status, in the
app (every device, durable in the user's ``notifications`` stream) and by Web Push to users with
no live connection.

Module map:
    domain/inbox    pure decisions for a batch of intents: coalescing per conversation, reads
                    (ids, all, a conversation), preferences and mutes, late statuses, the push
                    decision, unread counts
    domain/texts    title, body and data of each kind
    domain/push     pure Web Push rules: subscription checks, endpoint allow-list, payload
                    (<= 3,000 bytes, cut body then title), TTL/Urgency/Topic by kind, answer
                    classification, retry backoff
    handlers        records -> intents; a batch in a few round trips whatever its size (lock
                    streams, load, write and two COPYs), frames numbered and delivered (their
                    records built while Postgres writes), pushes staged or cancelled,
                    subscriptions, answers
    storage         every SQL statement of the notifications (schema ``notifier``) and the
                    ``notifications`` stream (the runtime's); the bell's reads under RLS
    wire            notification.new / notification.read frames built on the hot path
    http            the bell's reads for gateways (notifications.list, notification.prefs.get)
    metrics         notifications by kind, unread-count updates, what made no notification
    app             the service (SERVICE) and its parts: two consumers of one group (chat,
                    presence and bell commands, fetched with a hold; other teams' events,
                    deduplicated by (source, id), fetched at once), the push worker, the reads
    settings        NotifierSettings (the runtime's, Web Push's, its own)
    push_settings   PushSettings: VAPID key and subject, allow-list, concurrency, timeouts,
                    retry bounds
    vapid           VAPID keys: load, derive the public key, ``generate`` / ``public-key`` CLI
    webpush         one push: http_ece (RFC 8291 aes128gcm), py-vapid (RFC 8292), aiohttp
    push_storage    subscriptions and push jobs in Postgres; staging in the caller's
                    transaction, cancelling, claiming, settling
    push_worker     claims due jobs (SKIP LOCKED), sends with bounded concurrency per push
                    service, retries with backoff, gives up, deletes gone subscriptions
    push_metrics    realtime_pushes_total, realtime_push_latency_seconds, in-flight, backlog
    erasure         the notifier's part of a user's erasure: the user's data (on the request,
                    its own consumer), others' previews of their messages (chat's
                    chat.messages.erased), their connectivity (presence's erased fact)
    erasure_storage every statement of an erasure
    migrations/     versioned SQL (0001 notifications, 0002 Web Push)

Event flow::

    chat.events.v1, presence.connectivity.v1, notifier.commands.v1 --consumer (held)--+
    jobs.events.v1, applications.events.v1 --consumer (at once)--> handlers --tx--> Postgres
        --outbox--> delivery.frames.v1 (key: user): notification.new / notification.read / ack
        push jobs (same tx) --NOTIFY--> push_worker --> push services
    gateway --HTTP--> http: the bell's list and preferences; the stream's sync route
    users.erasure.v1 --its own consumer--> erasure --tx--> Postgres --> users.erased.v1
"""
