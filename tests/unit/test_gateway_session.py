"""The gateway's per-connection send queue (services/gateway/session.py): ``hello`` is the first
frame written, whatever the delivery tail handed the session before it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import cast

from websockets.asyncio.server import ServerConnection

from services.gateway.domain.auth import Principal
from services.gateway.domain.ratelimit import RateLimiter
from services.gateway.session import Session


class RecordingSocket:
    """Keeps what the session writes, in order: the session writes text frames through the
    protocol inside ``send_context`` (the only socket calls a writing session makes)."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.protocol = self

    def send_text(self, data: bytes) -> None:
        self.sent.append(data)

    @contextlib.asynccontextmanager
    async def send_context(self) -> AsyncIterator[None]:
        yield


def session_on(socket: RecordingSocket) -> Session:
    return Session(
        websocket=cast(ServerConnection, socket),
        principal=Principal(user_id="alice", expires_at=0.0),
        connection_id="c1",
        limiter=RateLimiter(rate_per_s=20, burst=40, abuse_limit=50),
        queue_limit=10,
    )


async def test_frames_handed_over_before_hello_are_written_after_it() -> None:
    socket = RecordingSocket()
    session = session_on(socket)

    session.send("message.new", b'{"type":"message.new"}')
    await asyncio.sleep(0)
    assert socket.sent == []

    session.start("hello", b'{"type":"hello"}')
    session.send("presence", b'{"type":"presence"}')
    await session.flush()
    assert socket.sent == [
        b'{"type":"hello"}',
        b'{"type":"message.new"}',
        b'{"type":"presence"}',
    ]


async def test_after_hello_each_frame_is_written_as_it_comes() -> None:
    socket = RecordingSocket()
    session = session_on(socket)
    session.start("hello", b'{"type":"hello"}')
    await session.flush()

    session.send("message.new", b'{"type":"message.new"}')
    await session.flush()
    assert socket.sent == [b'{"type":"hello"}', b'{"type":"message.new"}']
