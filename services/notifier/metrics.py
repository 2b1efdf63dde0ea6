"""Prometheus metrics of notifications (Web Push has its own: push_metrics). Names are queried by
deploy/prometheus and deploy/grafana."""

from __future__ import annotations

from prometheus_client import Counter

NOTIFICATIONS = Counter(
    "realtime_notifications_total",
    "Notifications stored, by kind and change (created, or updated in place: a conversation's"
    " unread message notification covering one more message)",
    ["kind", "change"],
)
UNREAD_UPDATES = Counter(
    "realtime_unread_count_updates_total",
    "Frames telling a user's devices a new unread count, by cause (new: notification.new,"
    " read: notification.read)",
    ["cause"],
)
NOT_NOTIFIED = Counter(
    "realtime_notifications_skipped_total",
    "Recipients or events that made no notification, by reason (muted, disabled, repeat,"
    " late_status, stale_connectivity, other_fact, payload_too_large)",
    ["reason"],
)
