"""The load generator's WebSocket clients and the bookkeeping of what was sent and received.

Latency is measured on the client side, in this one process, with ``time.perf_counter`` (a
monotonic clock): a message's index is its ``client_msg_id`` and its request ``id``, so the ack
(matched by ``id``) and the recipient's ``message.new`` (matched by ``message.client_msg_id``)
find their send time without any clock shared with the services.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from bench.system import AUTH_SECRET
from services.gateway.domain.auth import mint_token

#: A plausible chat line; the body's size matters to every hop, not its content.
BODY = "Thanks for applying! Are you free for a 30-minute call on Thursday afternoon?"

Frame = dict[str, Any]


def token(user_id: str, ttl_s: int = 6 * 3600) -> str:
    """A token the bench's gateway accepts."""
    return mint_token(secret=AUTH_SECRET, user_id=user_id, expires_at=int(time.time()) + ttl_s)


@dataclass
class Tracker:
    """Send, ack and delivery times of every message, by index (``client_msg_id``).

    ``delivered`` holds the first ``message.new`` at the recipient (one device per user in the
    latency scenarios); the fan-out scenario keeps its own per-device times.
    """

    sent_at: list[float] = field(default_factory=list)
    acked_at: dict[int, float] = field(default_factory=dict)
    delivered_at: dict[int, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # Who sent message i and to whom (for the sync check).
    route: list[tuple[int, int]] = field(default_factory=list)

    def next_index(self, now: float, sender: int, recipient: int) -> int:
        """Register a message about to be sent; returns its index."""
        self.sent_at.append(now)
        self.route.append((sender, recipient))
        return len(self.sent_at) - 1

    def error(self, code: str) -> None:
        """Count an error frame by code."""
        self.errors[code] = self.errors.get(code, 0) + 1


class LoadClient:
    """One connection of one user, with a reader task that routes frames.

    Args:
        number: the client's position in its scenario (used in routes).
        user_id: the user it is authenticated as.
        ws: the open connection (after ``hello``).
        on_frame: called with (client, parsed frame, arrival time) for every frame that is not
            the answer to a request made through :meth:`request`.
    """

    def __init__(
        self,
        number: int,
        user_id: str,
        ws: ClientConnection,
        on_frame: Callable[[LoadClient, Frame, float], None],
    ) -> None:
        self.number = number
        self.user_id = user_id
        self.ws = ws
        self.chat_seq = 0  # highest chat-stream seq seen live
        self._on_frame = on_frame
        self._waiters: dict[str, asyncio.Future[Frame]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._request_count = 0

    @classmethod
    async def open(
        cls,
        url: str,
        number: int,
        user_id: str,
        on_frame: Callable[[LoadClient, Frame, float], None],
    ) -> LoadClient:
        """Connect, read ``hello`` and start reading."""
        ws = await connect_ws(url, user_id)
        client = cls(number, user_id, ws, on_frame)
        client._reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        perf_counter = time.perf_counter
        loads = orjson.loads
        with contextlib.suppress(ConnectionClosed):
            async for raw in self.ws:
                now = perf_counter()
                frame = loads(raw)
                if self._waiters:
                    waiter = self._waiters.pop(frame.get("id") or "", None)
                    if waiter is not None:
                        if not waiter.done():
                            waiter.set_result(frame)
                        continue
                if frame["type"] == "message.new":
                    seq = frame["seq"]
                    if seq > self.chat_seq:
                        self.chat_seq = seq
                self._on_frame(self, frame, now)

    async def send_message(self, to: str, index: int) -> None:
        """Send a direct ``message.send`` whose id and client_msg_id are ``index``."""
        key = str(index)
        await self.ws.send(
            orjson.dumps(
                {
                    "type": "message.send",
                    "id": key,
                    "to": to,
                    "client_msg_id": key,
                    "kind": "text",
                    "body": BODY,
                }
            ).decode()
        )

    async def request(self, frame: Frame, timeout_s: float = 30.0) -> Frame:
        """Send a frame with a fresh id and wait for its answer."""
        self._request_count += 1
        request_id = f"r{self._request_count}"
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = waiter
        await self.ws.send(orjson.dumps({**frame, "id": request_id}).decode())
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        finally:
            self._waiters.pop(request_id, None)

    async def sync_all(self, after: int) -> list[Frame]:
        """Every chat frame of this user after seq ``after``, oldest first (paged sync).

        The whole cursor the server answers with is sent back: a stream left out of a request
        is served from its beginning (the notifications stream, since the notifier), so paging
        on the chat seq alone would ask for the same notifications page forever.
        """
        frames: list[Frame] = []
        cursor: dict[str, int] = {"chat": after}
        while True:
            answer = await self.request(
                {"type": "sync", "cursor": cursor, "limit": 1000}, timeout_s=60.0
            )
            if answer.get("type") != "ack":
                raise RuntimeError(f"sync refused: {answer.get('code')}")
            frames.extend(e for e in answer["events"] if e.get("stream", "chat") == "chat")
            cursor = dict(answer["cursor"])
            if not answer["has_more"]:
                return frames

    def abort(self) -> None:
        """Drop the connection at once (no closing handshake: fast for thousands)."""
        if self._reader is not None:
            self._reader.cancel()
        transport = self.ws.transport
        if transport is not None:
            transport.abort()

    async def close(self) -> None:
        """Close cleanly and stop reading."""
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            await asyncio.wait_for(self.ws.close(), 5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def connect_ws(
    url: str, user_id: str, *, local_ip: str | None = None, ping: bool = True
) -> ClientConnection:
    """Open an authenticated connection and consume ``hello``.

    Args:
        url: the gateway's ``/v1/ws``.
        user_id: token subject.
        local_ip: source address (127.0.0.x) so that many connections do not exhaust one
            address's ephemeral ports.
        ping: whether the client sends keepalive pings (idle connections leave it to the server).

    Raises:
        ConnectionError: the gateway refused or did not say hello.
    """
    kwargs: dict[str, Any] = {}
    if local_ip is not None:
        kwargs["local_addr"] = (local_ip, 0)
    try:
        ws = await connect(
            url,
            additional_headers={"Authorization": f"Bearer {token(user_id)}"},
            max_size=None,
            ping_interval=20 if ping else None,
            open_timeout=60,
            close_timeout=2,
            **kwargs,
        )
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        raise ConnectionError(f"connect failed: {type(exc).__name__}: {exc}") from exc
    hello = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
    if hello.get("type") != "hello":
        await ws.close()
        raise ConnectionError(f"expected hello, got {hello.get('type')}")
    return ws
