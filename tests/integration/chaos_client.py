"""The chaos soak's clients and its report (tests/integration/test_chaos.py).

A :class:`SoakClient` is one device of one user that behaves as the protocol asks: it
reconnects to the next gateway when its connection is lost, and :meth:`SoakClient.until_acked`
sends a frame again (same frame, so the same ``client_msg_id``) until it is acknowledged. An
answer other than ``ack``, ``unavailable`` or ``rate_limited`` is a violation unless the caller
says why it is legitimate (e.g. ``forbidden`` for a member whose removal was requested).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.harness import seconds, token

Frame = dict[str, Any]

DURATION_S = float(os.environ.get("CHAOS_DURATION_S", "40"))
ANSWER_TIMEOUT_S = seconds(10)


class Disconnected(Exception):
    """The connection went away (or could not be made) while waiting."""


class NotAcked(Exception):
    """A frame was retried until the deadline without an ack: the system did not recover."""


#: Says whether an error answer to a frame is legitimate: the name it is counted under, or None
#: (a violation).
Tolerate = Callable[[Frame, Frame], str | None]


def typing_before_membership(frame: Frame, answer: Frame) -> str | None:
    """Presence learns memberships from chat's facts, after the message's ack: a typing right
    after the first message of a conversation may come before it (docs/protocol-notes.md)."""
    if frame["type"] == "typing" and answer.get("code") == "forbidden":
        return "typing_before_membership_known"
    return None


@dataclass
class Report:
    """What the soak did and found."""

    users: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    invariants_checked: int = 0
    violations: list[str] = field(default_factory=list)
    violations_total: int = 0

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def check(self, holds: bool, violation: str) -> bool:
        """Count an invariant checked; record the violation when it does not hold."""
        self.invariants_checked += 1
        if not holds:
            self.violation(violation)
        return holds

    def violation(self, text: str) -> None:
        self.violations_total += 1
        if len(self.violations) < 100:
            self.violations.append(text)

    def as_dict(self) -> dict[str, Any]:
        return {
            "duration_s": DURATION_S,
            "users": self.users,
            "counts": dict(sorted(self.counts.items())),
            "faults": dict(self.faults),
            "faults_total": sum(self.faults.values()),
            "invariants_checked": self.invariants_checked,
            "violations_total": self.violations_total,
            "violations": self.violations,
        }


@dataclass
class SoakClient:
    """One user's device: reconnects to any gateway, answers matched by request id.

    Several tasks may use one client at once (a user's load and the group changes it makes as
    an admin): requests are matched by id, and reconnecting is serialised.
    """

    user: str
    urls: list[str]
    ws: ClientConnection | None = None
    # Request id -> the connection it was sent on, and its answer to come.
    pending: dict[str, tuple[ClientConnection, asyncio.Future[Frame]]] = field(default_factory=dict)
    reconnects: int = 0
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _reader: asyncio.Task[None] | None = None
    _connecting: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ensure(self, deadline: float) -> ClientConnection:
        """The open connection, or a new one to the next gateway (retried with backoff)."""
        async with self._connecting:
            if self.ws is not None and self.ws.close_code is None:
                return self.ws
            delay = 0.05
            while True:
                url = self.urls[next(self._turn) % len(self.urls)]
                headers = {"Authorization": f"Bearer {token(self.user, ttl_s=7200)}"}
                try:
                    ws = await asyncio.wait_for(
                        connect(url, additional_headers=headers, open_timeout=None), seconds(5)
                    )
                    hello = orjson.loads(await asyncio.wait_for(ws.recv(), seconds(5)))
                    assert hello["type"] == "hello", f"{self.user}: first frame {hello['type']}"
                except (OSError, TimeoutError, InvalidStatus, ConnectionClosed):
                    if time.monotonic() > deadline:
                        raise Disconnected(f"{self.user} could not reconnect") from None
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self.ws = ws
                self.reconnects += 1
                self._reader = asyncio.create_task(self._read(ws))
                return ws

    async def _read(self, ws: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in ws:
                frame = orjson.loads(message)
                entry = self.pending.pop(frame.get("id") or "", None)
                if entry is not None and not entry[1].done():
                    entry[1].set_result(frame)
        # Only the waiters of this connection: a newer one may already be open.
        for request_id, (sent_on, waiter) in list(self.pending.items()):
            if sent_on is ws:
                del self.pending[request_id]
                if not waiter.done():
                    waiter.set_exception(Disconnected(self.user))

    async def request(self, frame: Frame, deadline: float) -> Frame:
        """Send ``frame`` with a fresh id and return its answer.

        Raises:
            Disconnected: the connection dropped, or no answer came in time.
        """
        ws = await self.ensure(deadline)
        request_id = uuid.uuid4().hex
        waiter: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self.pending[request_id] = (ws, waiter)
        try:
            await ws.send(orjson.dumps({**frame, "id": request_id}).decode())
            return await asyncio.wait_for(waiter, ANSWER_TIMEOUT_S)
        except (ConnectionClosed, TimeoutError):
            raise Disconnected(self.user) from None
        finally:
            self.pending.pop(request_id, None)

    async def until_acked(
        self,
        frame: Frame,
        deadline: float,
        report: Report,
        tolerate: Tolerate = typing_before_membership,
    ) -> Frame:
        """``request`` until the answer is an ack; ``unavailable`` and lost connections are
        retried (same frame, so the same ``client_msg_id``); an error ``tolerate`` names is
        counted and returned; anything else is a violation.

        Raises:
            NotAcked: still no ack at ``deadline`` (the last answer says why).
        """
        last = "no answer"
        while time.monotonic() < deadline:
            try:
                answer = await self.request(frame, deadline)
            except Disconnected:
                report.count("retries")
                last = "connection lost"
                if self.ws is not None:
                    await self.ws.close()
                continue
            if answer.get("type") == "ack":
                return answer
            if answer.get("code") in ("unavailable", "rate_limited"):
                report.count("retries")
                last = str(answer.get("code"))
                await asyncio.sleep(0.2)
                continue
            excuse = tolerate(frame, answer)
            if excuse is not None:
                report.count(excuse)
                return answer
            report.violation(
                f"{self.user}: {frame['type']} answered {answer.get('code')}: {answer}"
            )
            return answer
        raise NotAcked(f"{self.user}: {frame['type']} not acked in time (last: {last})")

    async def close(self) -> None:
        """Close the connection (the client may connect again with :meth:`ensure`)."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
