"""Prometheus metrics of Web Push (names are queried by deploy/prometheus and deploy/grafana)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Staging to acceptance spans retries, so the buckets reach from milliseconds to an hour.
PUSH_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)

PUSHES = Counter(
    "realtime_pushes_total",
    "Push attempts by outcome (sent, retried, given_up, gone, failed) and reason",
    ["outcome", "reason"],
)
PUSH_LATENCY = Histogram(
    "realtime_push_latency_seconds",
    "From a push being staged to a push service accepting it (retries included)",
    buckets=PUSH_LATENCY_BUCKETS,
)
PUSHES_IN_FLIGHT = Gauge("realtime_push_in_flight", "Push requests sent and not yet answered")
PUSH_BACKLOG = Gauge(
    "realtime_push_backlog", "Push jobs staged and not settled (due, retrying or in flight)"
)
