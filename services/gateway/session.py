"""One WebSocket connection: what the gateway keeps about it, before the upgrade
(:class:`GatewayConnection`, websockets' connection with the principal on it) and after
(:class:`Session`: identity, bounded send queue, rate limiter).

The send queue is a deque drained by a writer task; both exist only while frames wait, so an
idle connection costs neither (an empty deque is 760 bytes, a twentieth of what a connection
costs in all). The writer takes every frame queued by then and writes them in one go (one
socket write for a burst: a message and its ack, a user's frames of one delivery record). A
client that lets the queue fill is closed with 4009: it must reconnect and sync, and it never
makes the gateway's memory grow.

Commands a connection hands on are not awaited one by one: the frame loop enqueues each to
the producer and reads on, so a client may have several in flight to one conversation (in
order: one producer, one partition per key). Their number is bounded per connection
(``max_unconfirmed``): past it, or before a command to another key, the loop waits before
reading more (TCP pushes back on the client). The requests awaiting an answer are kept
(their ids) so that load shedding (:mod:`services.gateway.domain.shedding`) can forget them when
the connection goes.

Nothing is written before :meth:`Session.start` writes ``hello``: the session is registered
(and may be handed delivery frames) while the gateway is still taking its partition, and the
protocol's first frame is ``hello``.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    Its outgoing data is written in one ``transport.write`` (websockets writes each frame's
    bytes separately: one system call per frame on uvloop, which writes at once).
    """

    principal: Principal | None = None

    def send_data(self) -> None:
        """Write every pending frame at once; an end of stream (b"") goes the library's way."""
        chunks = self.protocol.data_to_send()
        if not chunks:
            return
        if all(chunks):
            self.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
            return
        for chunk in chunks:
            if chunk:
                self.transport.write(chunk)
            elif self.transport.can_write_eof():
                # As websockets does: half-close when possible, else close.
                with contextlib.suppress(Exception):
                    self.transport.write_eof()
            else:
                self.transport.close()


class Session:
    """A connected device of a user."""

    __slots__ = (
        "_closing",
        "_in_flight_to",
        "_queue",
        "_queue_limit",
        "_room",
        "_started",
        "_unconfirmed",
        "_writer",
        "connection_id",
        "limiter",
        "pending",
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
        self._started = False
        self._closing = False
        # Commands enqueued to the producer, not yet acknowledged by Kafka, and where they go.
        self._unconfirmed = 0
        self._in_flight_to: tuple[str, str] | None = None
        self._room: asyncio.Future[None] | None = None
        # Ids of requests handed on whose answer has not arrived (None: none).
        self.pending: set[str] | None = None

    @property
    def user_id(self) -> str:
        """The authenticated user."""
        return self.principal.user_id

    def refuse(
        self,
        request_id: str | None,
        code: ErrorCode,
        message: str,
        *,
        retry_after_ms: int | None = None,
    ) -> None:
        """Answer a frame with an ``error`` (counted by code); ``message`` never echoes input.
        ``retry_after_ms``: when to try again (``unavailable`` of an overloaded gateway)."""
        ERRORS.labels(code).inc()
        error = Error(id=request_id, code=code, message=message, retry_after_ms=retry_after_ms)
        self.send("error", error.to_wire())

    def start(self, frame_type: str, data: bytes) -> None:
        """Write the connection's first frame (``hello``), then what was queued before it."""
        if self._closing:
            return
        if self._queue is None:
            self._queue = deque()
        self._queue.appendleft((frame_type, data))
        self._started = True
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    def send(self, frame_type: str, data: bytes) -> None:
        """Queue a frame (JSON, UTF-8) for this device, or close the connection with 4009 when
        it lags. Written once :meth:`start` has written the first frame."""
        if self._closing:
            return
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= self._queue_limit:
            log.warning("send queue full; closing", extra={"connection_id": self.connection_id})
            self.close(CLOSE_TOO_SLOW, "too slow to keep up; reconnect and sync")
            return
        self._queue.append((frame_type, data))
        if self._writer is None and self._started:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        websocket = self.websocket
        try:
            while self._queue:
                burst = list(self._queue)
                self._queue.clear()
                # Every frame queued by now in one write (GatewayConnection.send_data joins
                # them); text frames from bytes already UTF-8: no decode, no encode.
                async with websocket.send_context():
                    for _, data in burst:
                        websocket.protocol.send_text(data)
                for frame_type, _ in burst:
                    FRAMES_OUT_BY_TYPE[frame_type].inc()
        except ConnectionClosed:
            pass
        finally:
            # Nothing is queued (or the connection is gone): drop the deque until next time.
            self._queue = None
            self._writer = None

    async def publish_slot(self, destination: tuple[str, str], limit: int) -> None:
        """Wait until a command to ``destination`` (topic, key) may be enqueued: fewer than
        ``limit`` of this connection's commands unconfirmed, all of them to the same
        destination. Commands to one key keep their order in its partition; a command to
        another key waits until Kafka has the earlier ones, so the order of a client's
        commands across conversations is the order Kafka receives them in (a client_msg_id
        reused in another conversation: the first use wins)."""
        while self._unconfirmed >= limit or (
            self._unconfirmed and self._in_flight_to != destination
        ):
            if self._room is None:
                self._room = asyncio.get_running_loop().create_future()
            await self._room
        self._in_flight_to = destination

    def publishing(self) -> None:
        """A command of this connection was enqueued to the producer."""
        self._unconfirmed += 1

    def published(self) -> None:
        """Kafka acknowledged (or refused) one of them."""
        self._unconfirmed -= 1
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

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
