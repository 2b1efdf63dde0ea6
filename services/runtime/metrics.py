"""Prometheus metrics every service shares; services add their own beside them.

Names are fixed here because dashboards and alert rules (deploy/prometheus, deploy/grafana)
query them.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# The *_created series double every counter's exposition and no dashboard of ours reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: Milliseconds-to-seconds buckets tuned for a fast path of a few ms and a tail up to 5 s.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)

ERRORS = Counter(
    "realtime_errors_total", "Errors by code (protocol error codes and internal causes)", ["code"]
)
DLQ_RECORDS = Counter(
    "realtime_dlq_records_total", "Records sent to a dead-letter topic", ["topic", "reason"]
)
RECORDS_PROCESSED = Counter(
    "realtime_records_processed_total", "Records consumed and applied", ["topic"]
)
RECORDS_SKIPPED = Counter(
    "realtime_records_skipped_total",
    "Records consumed that changed nothing, so no transaction was run for them",
    ["topic"],
)
INBOUND_DUPLICATES = Counter(
    "realtime_inbound_duplicates_total",
    "Inbound records skipped as repeats of an event already applied (same CloudEvents source"
    " and id)",
    ["topic"],
)
CONSUMER_LAG = Gauge(
    "realtime_consumer_lag",
    "Records between a partition's high watermark and our position",
    ["topic", "partition"],
)
DB_SECONDS = Histogram(
    "realtime_db_seconds", "Postgres transaction latency", ["operation"], buckets=LATENCY_BUCKETS
)
BATCH_SIZE = Histogram(
    "realtime_consumer_batch_records",
    "Records per consumed batch",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
OUTBOX_PUBLISHED = Counter(
    "realtime_outbox_published_total", "Outbox rows published to Kafka", ["path"]
)
OUTBOX_BACKLOG_ROWS = Gauge(
    "realtime_outbox_backlog_rows",
    "Rows in a service's outbox, counted up to 10000 (measured by the relay every interval)",
    ["schema"],
)
OUTBOX_OLDEST_ROW_AGE = Gauge(
    "realtime_outbox_oldest_row_age_seconds",
    "Age of the oldest row in a service's outbox, 0 when it is empty (measured by the relay)",
    ["schema"],
)
DELIVERY_LATENCY = Histogram(
    "realtime_delivery_latency_seconds",
    "From a command entering the gateway to a resulting frame leaving a gateway",
    ["type"],
    buckets=LATENCY_BUCKETS,
)


_Metric = TypeVar("_Metric", Counter, Histogram)


class Children(Generic[_Metric]):
    """The children of a one-label metric, each looked up once.

    ``labels()`` builds a key tuple and takes the metric's lock on every call; on the gateway's
    per-frame path that was 4 % of its CPU. Only for labels whose values are a small fixed set
    (frame types), since every value seen is kept.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: _Metric) -> None:
        self._metric: _Metric = metric
        self._children: dict[str, _Metric] = {}

    def __getitem__(self, value: str) -> _Metric:
        child = self._children.get(value)
        if child is None:
            child = self._children[value] = self._metric.labels(value)
        return child
