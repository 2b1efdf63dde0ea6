"""Pure notifier logic (no I/O; ``now``, ids and randomness are always passed in).

Module map:
    inbox  every decision about users' notifications for a batch of intents: coalescing per
           conversation, reads, preferences and mutes, the push decision, late statuses,
           unread counts
    texts  title, body and ``data`` of each kind
    push   Web Push: subscriptions, allow-list, payload, headers, answers, retries
    erasure  an erased user's trace in others' notifications (preview, title, sender)
"""
