"""Gateway metrics (names fixed: dashboards and alerts query them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.runtime.metrics import DELIVERY_LATENCY, Children

CONNECTIONS = Gauge("realtime_gateway_connections", "Open WebSocket connections")
FRAMES_IN = Counter("realtime_frames_in_total", "Client frames received, by type", ["type"])
FRAMES_OUT = Counter("realtime_frames_out_total", "Frames sent to clients, by type", ["type"])
CLOSES = Counter("realtime_gateway_closes_total", "Connections closed by the server", ["code"])
UPGRADES_REFUSED = Counter(
    "realtime_gateway_upgrades_refused_total",
    "Upgrades refused before the handshake (401/403 auth, 429 handshake rate, 503 full)",
    ["status"],
)
CONNECTION_LIMIT = Gauge(
    "realtime_gateway_connection_limit",
    "Most connections this gateway accepts: GATEWAY_MAX_CONNECTIONS or less, when the file "
    "descriptor limit leaves less",
)
HANDSHAKE_SOURCES = Gauge(
    "realtime_gateway_handshake_sources",
    "Client addresses the handshake rate limiter tracks (bounded; refilled buckets are dropped)",
)
HELD_PARTITIONS = Gauge(
    "realtime_gateway_delivery_partitions", "Delivery partitions this gateway tails"
)

#: Per-frame lookups of the metrics above, by frame type.
FRAMES_IN_BY_TYPE = Children(FRAMES_IN)
FRAMES_OUT_BY_TYPE = Children(FRAMES_OUT)
DELIVERY_LATENCY_BY_TYPE = Children(DELIVERY_LATENCY)
