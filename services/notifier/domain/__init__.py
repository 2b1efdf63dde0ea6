"""Pure notifier logic (no I/O; ``now`` and randomness are always passed in).

Module map:
    push  Web Push: subscriptions, allow-list, payload, headers, answers, retries
"""
