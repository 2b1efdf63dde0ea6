"""Notifier service: notifications for new messages, job alerts and application status, and
Web Push to users with no live connection.

Module map (Web Push so far; the consumers, notifications and streams join it):
    domain/push     pure rules: subscription checks, endpoint allow-list, payload (<= 3,000
                    bytes, cut body then title), TTL/Urgency/Topic by kind, answer
                    classification, retry backoff
    push_settings   PushSettings: VAPID key and subject, allow-list, concurrency, timeouts,
                    retry bounds
    vapid           VAPID keys: load, derive the public key, ``generate`` / ``public-key`` CLI
    webpush         one push: http_ece (RFC 8291 aes128gcm), py-vapid (RFC 8292), httpx
    push_storage    subscriptions and push jobs in Postgres (schema ``notifier``); staging in
                    the caller's transaction, cancelling, claiming, settling
    push_worker     claims due jobs (SKIP LOCKED), sends with bounded concurrency per push
                    service, retries with backoff, gives up, deletes gone subscriptions
    push_metrics    realtime_pushes_total, realtime_push_latency_seconds, in-flight, backlog

Push flow::

    notifier tx: store notification --build_push--> stage_pushes (one job per subscription)
        --COMMIT, NOTIFY--> push_worker: claim --> encrypt + VAPID --> POST push service
        --> 201 done | 404/410 subscription deleted | 429/5xx/timeout retry | 4xx failed
    notification read before the push left --> cancel_pushes (same transaction as the read)
"""
