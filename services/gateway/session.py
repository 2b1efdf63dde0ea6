"""One WebSocket connection: what the gateway keeps about it, before the upgrade
(:class:`GatewayConnection`, websockets' connection with the principal on it) and after
(:class:`Session`: identity, bounded send queue, rate limiter).

The send queue is a deque drained by a writer task; both exist only while frames wait, so an
idle connection costs neither (an empty deque is 760 bytes, a twentieth of what a connection
costs in all). A client that lets the queue fill is closed with 4009: it must
reconnect and sync, and it never makes the gateway's memory grow.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from schemas.frames import Error, ErrorCode
from services.gateway.domain.auth import Principal
from services.gateway.domain.ratelimit import RateLimiter
from services.gateway.metrics import CLOSES, FRAMES_OUT_BY_TYPE
from services.runtime.metrics import ERRORS

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_RATE_ABUSE = 4008
CLOSE_TOO_SLOW = 4009
#: The user opened more connections on this gateway than allowed: the oldest make room.
CLOSE_REPLACED = 4010
#: Standard "try again later": the gateway filled up while this upgrade was under way.
CLOSE_TRY_AGAIN_LATER = 1013


class GatewayConnection(ServerConnection):
    """websockets' server connection, carrying the principal authenticated before the upgrade.

    The state of a handshake lives on its connection: a handshake refused or abandoned after
    authentication takes its principal along when it goes (a table beside the connections
    would keep it).
    """

    principal: Principal | None = None


class Session:
    """A connected device of a user."""

    __slots__ = (
        "_closing",
        "_queue",
        "_queue_limit",
        "_writer",
        "connection_id",
        "limiter",
        "principal",
        "websocket",
    )

    def __init__(
        self,
        *,
        websocket: ServerConnection,
        principal: Principal,
        connection_id: str,
        limiter: RateLimiter,
        queue_limit: int,
    ) -> None:
        self.websocket = websocket
        self.principal = principal
        self.connection_id = connection_id
        self.limiter = limiter
        self._queue: deque[tuple[str, bytes]] | None = None
        self._queue_limit = queue_limit
        self._writer: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def user_id(self) -> str:
        """The authenticated user."""
        return self.principal.user_id

    def refuse(self, request_id: str | None, code: ErrorCode, message: str) -> None:
        """Answer a frame with an ``error`` (counted by code); ``message`` never echoes input."""
        ERRORS.labels(code).inc()
        self.send("error", Error(id=request_id, code=code, message=message).to_wire())

    def send(self, frame_type: str, data: bytes) -> None:
        """Queue a frame (JSON, UTF-8) for this device, or close the connection with 4009 when
        it lags."""
        if self._closing:
            return
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= self._queue_limit:
            log.warning("send queue full; closing", extra={"connection_id": self.connection_id})
            self.close(CLOSE_TOO_SLOW, "too slow to keep up; reconnect and sync")
            return
        self._queue.append((frame_type, data))
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._queue:
                frame_type, data = self._queue.popleft()
                # A text frame from bytes already UTF-8: no decode here, no encode in websockets.
                await self.websocket.send(data, text=True)
                FRAMES_OUT_BY_TYPE[frame_type].inc()
        except ConnectionClosed:
            pass
        finally:
            # Nothing is queued (or the connection is gone): drop the deque until next time.
            self._queue = None
            self._writer = None

    async def flush(self) -> None:
        """Wait until queued frames are written (or the connection is gone)."""
        writer = self._writer
        if writer is not None:
            await asyncio.gather(writer, return_exceptions=True)

    def close(self, code: int, reason: str) -> None:
        """Close from the server side (once); frames already queued are dropped."""
        if self._closing:
            return
        self._closing = True
        self._queue = None
        CLOSES.labels(str(code)).inc()
        task = asyncio.create_task(self.websocket.close(code, reason))
        # The loop holds tasks weakly: keep the close alive until it is done.
        _closing_tasks.add(task)
        task.add_done_callback(_closing_tasks.discard)


_closing_tasks: set[asyncio.Task[None]] = set()
