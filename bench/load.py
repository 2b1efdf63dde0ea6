"""Offered load: users in pairs sending direct messages to each other at a fixed total rate.

The sender is open-loop: message ``k`` of a step is due at ``start + k / rate`` whatever the
system does, so a slow system shows up as latency (and, past its limit, as a backlog that never
drains), not as a politely reduced rate. When this process itself cannot keep the schedule,
``achieved_rate`` falls below ``rate`` and the step says so.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bench.client import Frame, LoadClient, Tracker
from bench.progress import Progress, bar
from bench.stats import summarize


async def paced(start: float, first: float, interval: float, seconds: float) -> AsyncIterator[int]:
    """One sender's share of an open loop: yields n = 0, 1, ... at ``first + n * interval``
    (``time.perf_counter`` seconds), whatever the system answered, until ``seconds`` after
    ``start``. A send that returns late makes the next ones due at once, not later."""
    n = 0
    while True:
        due = first + n * interval
        if due - start >= seconds:
            return
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield n
        n += 1


@dataclass
class StepResult:
    """What one offered-load step measured."""

    rate: int  # offered messages per second
    duration_s: float  # how long messages were sent
    sent: int
    acked: int  # acks received before the drain deadline
    delivered: int  # recipient message.new received before the drain deadline
    lost: int  # sent but not both acked and delivered by the drain deadline
    achieved_rate: float  # messages actually sent per second
    delivery: dict[str, float]  # p50/p95/p99/max of send -> recipient message.new
    ack: dict[str, float]  # same, send -> sender's ack
    errors: dict[str, int]
    first_index: int
    last_index: int  # exclusive
    cpu: dict[str, object] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        """The result file's ``latency`` entry."""
        return {
            "rate": self.rate,
            "p50_ms": self.delivery["p50_ms"],
            "p95_ms": self.delivery["p95_ms"],
            "p99_ms": self.delivery["p99_ms"],
            "max_ms": self.delivery["max_ms"],
            "ack_p50_ms": self.ack["p50_ms"],
            "ack_p95_ms": self.ack["p95_ms"],
            "ack_p99_ms": self.ack["p99_ms"],
            "ack_max_ms": self.ack["max_ms"],
            "sent": self.sent,
            "lost": self.lost,
            "achieved_rate": round(self.achieved_rate, 1),
            "duration_s": round(self.duration_s, 2),
            "errors": self.errors,
            "cpu": self.cpu,
        }


class PairLoad:
    """``users`` connections (one per user), paired 0<->1, 2<->3, ...

    Args:
        url: the gateway's WebSocket URL.
        users: how many users (rounded up to an even number).
        progress: the live status line.
        label: prefix of the user ids (so scenarios never share users).
    """

    def __init__(self, url: str, users: int, progress: Progress, label: str) -> None:
        self._url = url
        self._count = users + users % 2
        self._progress = progress
        self._run = f"{label}-{uuid.uuid4().hex[:6]}"
        self.tracker = Tracker()
        self.clients: list[LoadClient] = []

    async def open(self, concurrency: int = 50) -> None:
        """Connect every user, then exchange one message per pair (creates the conversations)."""
        gate = asyncio.Semaphore(concurrency)

        async def one(number: int) -> LoadClient:
            async with gate:
                return await LoadClient.open(
                    self._url, number, f"{self._run}-u{number}", self._on_frame
                )

        self.clients = list(await asyncio.gather(*(one(n) for n in range(self._count))))
        first = len(self.tracker.sent_at)
        for client in self.clients[::2]:
            peer = self.clients[client.number + 1]
            index = self.tracker.next_index(time.perf_counter(), client.number, peer.number)
            await client.send_message(peer.user_id, index)
        await self.wait_settled(first, len(self.tracker.sent_at), timeout_s=60.0)

    def _on_frame(self, client: LoadClient, frame: Frame, now: float) -> None:
        kind = frame["type"]
        if kind == "ack":
            self.tracker.acked_at.setdefault(int(frame["id"]), now)
        elif kind == "message.new":
            message = frame["message"]
            if message["sender_id"] != client.user_id:
                self.tracker.delivered_at.setdefault(int(message["client_msg_id"]), now)
        elif kind == "error":
            self.tracker.error(str(frame.get("code")))

    def outstanding(self, first: int, last: int) -> int:
        """Messages in [first, last) not yet both acked and delivered."""
        acked, delivered = self.tracker.acked_at, self.tracker.delivered_at
        return sum(1 for i in range(first, last) if i not in acked or i not in delivered)

    async def wait_settled(self, first: int, last: int, *, timeout_s: float) -> bool:
        """Wait until every message in [first, last) is acked and delivered; False on timeout."""
        deadline = time.perf_counter() + timeout_s
        while self.outstanding(first, last):
            if time.perf_counter() >= deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def run(self, rate: int, duration_s: float, *, drain_s: float, label: str) -> StepResult:
        """Offer ``rate`` messages/s for ``duration_s``; wait up to ``drain_s`` for stragglers."""
        tracker, clients = self.tracker, self.clients
        count = len(clients)
        total = max(int(rate * duration_s), 1)
        first = len(tracker.sent_at)
        errors_before = dict(tracker.errors)
        delivered_before = len(tracker.delivered_at)
        perf_counter = time.perf_counter
        start = perf_counter()
        sent = 0
        while sent < total:
            due = min(total, int((perf_counter() - start) * rate) + 1)
            while sent < due:
                sender = clients[sent % count]
                peer = clients[sender.number ^ 1]
                index = tracker.next_index(perf_counter(), sender.number, peer.number)
                await sender.send_message(peer.user_id, index)
                sent += 1
            elapsed = perf_counter() - start
            self._progress.update(
                f"{label} {rate}/s {bar(elapsed / duration_s)} {elapsed:5.1f}/{duration_s:.0f}s"
                f" sent={sent} pending={sent - (len(tracker.delivered_at) - delivered_before)}"
            )
            await asyncio.sleep(0.002)
        send_s = perf_counter() - start
        last = first + total
        drain_deadline = perf_counter() + drain_s
        while (pending := self.outstanding(first, last)) and perf_counter() < drain_deadline:
            self._progress.update(f"{label} {rate}/s draining: {pending} pending")
            await asyncio.sleep(0.1)
        acks = [
            tracker.acked_at[i] - tracker.sent_at[i]
            for i in range(first, last)
            if i in tracker.acked_at
        ]
        deliveries = [
            tracker.delivered_at[i] - tracker.sent_at[i]
            for i in range(first, last)
            if i in tracker.delivered_at
        ]
        errors = {
            code: n - errors_before.get(code, 0)
            for code, n in tracker.errors.items()
            if n > errors_before.get(code, 0)
        }
        return StepResult(
            rate=rate,
            duration_s=send_s,
            sent=total,
            acked=len(acks),
            delivered=len(deliveries),
            lost=self.outstanding(first, last),
            achieved_rate=total / send_s if send_s > 0 else float(total),
            delivery=summarize(deliveries),
            ack=summarize(acks),
            errors=errors,
            first_index=first,
            last_index=last,
        )

    async def verify_synced(self, step: StepResult, cursors: dict[int, int]) -> int:
        """Sync every user from ``cursors`` and count acked messages missing from a stream.

        Every acked message must be in its recipient's and its sender's chat stream.

        Returns:
            How many (message, user) pairs are missing.
        """
        tracker = self.tracker
        gate = asyncio.Semaphore(16)
        synced: dict[int, set[str]] = {}

        async def one(client: LoadClient) -> None:
            async with gate:
                frames = await client.sync_all(cursors.get(client.number, 0))
            synced[client.number] = {
                frame["message"]["client_msg_id"]
                for frame in frames
                if frame.get("type") == "message.new"
            }

        await asyncio.gather(*(one(client) for client in self.clients))
        missing = 0
        for index in range(step.first_index, step.last_index):
            if index not in tracker.acked_at:
                continue
            sender, recipient = tracker.route[index]
            key = str(index)
            missing += key not in synced[sender]
            missing += key not in synced[recipient]
        return missing

    def cursors(self) -> dict[int, int]:
        """Each user's highest chat seq seen live (where a later sync starts)."""
        return {client.number: client.chat_seq for client in self.clients}

    async def close(self) -> None:
        """Close every connection."""
        await asyncio.gather(*(client.close() for client in self.clients))
