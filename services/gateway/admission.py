"""Admission of connections: the limits of ``domain/limits.py`` applied to handshakes and new
connections, each refusal counted.

    process_request --refuse_handshake--> 429 (handshakes per address) | 503 (gateway full)
    handle          --over_capacity-----> close 1013 (two upgrades raced for the last place)
                    --evict_oldest------> close 4010 on the user's oldest connections

The cap is fixed at start: the configured number, lowered to what ``RLIMIT_NOFILE`` leaves
(the soft limit is first raised toward the hard one, as servers do), so the process never
runs out of file descriptors whatever clients do.
"""

from __future__ import annotations

import logging
import math
import resource
from collections.abc import Callable, Sequence
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from services.gateway.domain.limits import (
    FD_RESERVE,
    HandshakeLimiter,
    Network,
    client_address,
    connection_cap,
)
from services.gateway.domain.registry import Registry
from services.gateway.metrics import (
    CLOSES,
    CONNECTION_LIMIT,
    HANDSHAKE_SOURCES,
    UPGRADES_REFUSED,
)
from services.gateway.session import CLOSE_REPLACED, CLOSE_TRY_AGAIN_LATER, Session

log = logging.getLogger(__name__)

#: What a full gateway tells clients to wait (seconds); clients add jitter.
FULL_RETRY_AFTER_S = 5


def file_descriptor_limit(wanted: int) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` toward ``wanted`` (never above the hard limit) and
    return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE", extra={"error": type(exc).__name__})
    return wanted if soft == resource.RLIM_INFINITY else soft


class Admission:
    """Decides whether a handshake may proceed and which connections make room.

    Args:
        registry: the gateway's sessions (their count is the load).
        max_connections: the configured cap (``GATEWAY_MAX_CONNECTIONS``).
        per_user: connections of one user kept on this gateway.
        handshakes: the per-address handshake limiter.
        trusted_proxies: peers whose ``X-Forwarded-For`` names the client.
        clock: monotonic seconds, injected.
    """

    def __init__(
        self,
        *,
        registry: Registry[Session],
        max_connections: int,
        per_user: int,
        handshakes: HandshakeLimiter,
        trusted_proxies: Sequence[Network],
        clock: Callable[[], float],
    ) -> None:
        self._registry = registry
        fd_limit = file_descriptor_limit(max_connections + FD_RESERVE)
        self.cap = connection_cap(configured=max_connections, fd_limit=fd_limit)
        if self.cap < max_connections:
            log.warning(
                "connection cap lowered to fit the file descriptor limit",
                extra={"configured": max_connections, "cap": self.cap, "fd_limit": fd_limit},
            )
        CONNECTION_LIMIT.set(self.cap)
        self._per_user = per_user
        self._handshakes = handshakes
        self._trusted = trusted_proxies
        self._clock = clock

    def refuse_handshake(
        self, connection: ServerConnection, request: Request, *, upgrade: bool
    ) -> Response | None:
        """429 when the client's address is over its handshake rate; for an ``upgrade``, 503
        when the gateway is full. None: go on (authentication comes next)."""
        peer = connection.remote_address[0] if connection.remote_address else ""
        source = client_address(peer, request.headers.get("X-Forwarded-For"), self._trusted)
        wait_s = self._handshakes.check(source, self._clock())
        HANDSHAKE_SOURCES.set(len(self._handshakes))
        if wait_s is not None:
            return _refusal(HTTPStatus.TOO_MANY_REQUESTS, wait_s, b"too many handshakes")
        if upgrade and len(self._registry) >= self.cap:
            return _refusal(HTTPStatus.SERVICE_UNAVAILABLE, FULL_RETRY_AFTER_S, b"gateway full")
        return None

    def over_capacity(self) -> bool:
        """True when an upgrade that passed :meth:`refuse_handshake` finds no place left
        (concurrent handshakes): it is closed with 1013, and the cap holds exactly."""
        if len(self._registry) < self.cap:
            return False
        CLOSES.labels(str(CLOSE_TRY_AGAIN_LATER)).inc()
        return True

    def evict_oldest(self, session: Session) -> None:
        """Close the user's oldest connections beyond the per-user limit (4010), after
        ``session`` (the newest) was registered."""
        for old in self._registry.oldest_beyond(session.user_id, self._per_user):
            old.close(CLOSE_REPLACED, "too many connections; replaced by a newer one")


def _refusal(status: HTTPStatus, retry_after_s: float, reason: bytes) -> Response:
    UPGRADES_REFUSED.labels(str(status.value)).inc()
    body = b'{"error":"' + reason + b'"}'
    headers = Headers(
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Retry-After", str(max(math.ceil(retry_after_s), 1))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
