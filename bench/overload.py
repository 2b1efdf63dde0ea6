"""Scenario ``overload``: twice the capacity for a while, then the normal rate again.

Past capacity a system either queues (latency grows for as long as the overload lasts, and
for as long again to drain) or pushes back. Ours pushes back at the gateway (load shedding,
services/gateway/domain/shedding.py): while the oldest command handed on waits too long for
its answer, new commands are answered ``unavailable`` with ``retry_after_ms``. This scenario
shows what a client sees, second by second:

    warm-up  ``capacity`` msgs/s for ``warmup_s`` from other users, unmeasured, then ANALYZE
    phase 1  ``capacity`` msgs/s for ``before_s``  (normal)
    phase 2  2 x ``capacity`` for ``over_s``        (overload)
    phase 3  ``capacity`` for ``after_s``           (load falls: recovery)

Users in pairs, open loop, each message ``message.send`` with id = client_msg_id = its index;
a refused message is not resent (what the system accepted is what is measured). Per second of
sending: offered, acked, refused, delivery p50/p99 of the messages sent in that second.
Verdicts: delivery p99 of accepted messages during the overload (bounded or growing), the
recovery time (from the fall of the load to the start of the first second from which every
later second has p99 < 100 ms and no refusal), the delivery latency of each phase (before, the
overload, the first 10 s after the fall, the rest: recovered within 10 s, the rest looks like
"before"), and the sync check: every acked message must be in its sender's and its
recipient's stream (nothing acked is lost).

The warm-up gives the tables statistics, as the duel's does: on a database made for the run,
the plans cached on empty tables scan whole tables until autovacuum's first visit, and whether
that visit came inside the run decided the recovery (Postgres at 0.58 cores against 0.32 over
two identical runs, the later seconds' p99 growing with the table; docs/performance.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.client import Frame, LoadClient
from bench.load import paced
from bench.progress import Progress
from bench.stats import summarize
from bench.system import CpuMeter, System, analyze

#: The issue's bound on recovery: the phases split the time after the fall here.
RECOVERY_BOUND_S = 10.0


@dataclass(frozen=True)
class OverloadSizes:
    """Sizes of the overload scenario."""

    capacity: int = 1000  # msgs/s the system keeps up with (the duel finds it)
    pairs: int = 20
    warmup_s: float = 20.0  # at capacity, other users, before statistics are taken
    before_s: float = 10.0
    over_s: float = 20.0
    after_s: float = 20.0
    settle_s: float = 60.0
    p99_limit_ms: float = 100.0


@dataclass
class _Book:
    sent_at: list[float] = field(default_factory=list)
    route: list[tuple[int, int]] = field(default_factory=list)
    acked_at: dict[int, float] = field(default_factory=dict)
    delivered_at: dict[int, float] = field(default_factory=dict)
    refused: dict[int, int | None] = field(default_factory=dict)
    other_errors: dict[str, int] = field(default_factory=dict)


async def overload(
    system: System, meter: CpuMeter, sizes: OverloadSizes, progress: Progress
) -> dict[str, Any]:
    """Warm up, run the three phases and return the timeline and verdicts."""
    tag = f"over-{uuid.uuid4().hex[:6]}"
    if sizes.warmup_s > 0:
        warm = _Book()
        warmers = await _open_pairs(system, sizes.pairs, f"{tag}-w", warm)
        await _offer(warmers, warm, sizes.capacity, sizes.warmup_s, progress)
        await _settle(warm, sizes.settle_s, progress)
        for client in warmers:
            await client.close()
        await analyze(system.database_url)
    book = _Book()
    clients = await _open_pairs(system, sizes.pairs, f"{tag}-u", book)
    phases = [
        (sizes.capacity, sizes.before_s),
        (2 * sizes.capacity, sizes.over_s),
        (sizes.capacity, sizes.after_s),
    ]
    started = time.perf_counter()
    with meter.measure() as cpu:
        for rate, seconds in phases:
            await _offer(clients, book, rate, seconds, progress)
        await _settle(book, sizes.settle_s, progress)
    missing = await _missing_after_sync(clients, book, progress)
    for client in clients:
        await client.close()
    timeline = _timeline(book, started)
    over_from, over_to = sizes.before_s, sizes.before_s + sizes.over_s

    def delivered(from_s: float, to_s: float) -> dict[str, float]:
        """Delivery latency of the accepted messages sent in [from_s, to_s) of the run."""
        return summarize(
            [
                book.delivered_at[i] - t
                for i, t in enumerate(book.sent_at)
                if from_s <= t - started < to_s and i in book.delivered_at
            ]
        )

    during = delivered(over_from, over_to)
    # The state before the overload against the state after it, in two halves: one that has
    # recovered within 10 s shows a second half like "before" (the strict recovery_s also
    # counts a single late second, which the normal rate has too: docs/performance.md).
    by_phase = {
        "before": delivered(0, over_from),
        "overload": during,
        "after_first_10s": delivered(over_to, over_to + RECOVERY_BOUND_S),
        "after_rest": delivered(over_to + RECOVERY_BOUND_S, float("inf")),
    }
    recovery_s = _recovery_s(timeline, over_to, sizes.p99_limit_ms)
    result: dict[str, Any] = {
        "sizes": dict(vars(sizes)),
        "sent": len(book.sent_at),
        "acked": len(book.acked_at),
        "refused": len(book.refused),
        "unanswered": len(book.sent_at) - len(book.acked_at) - len(book.refused),
        "other_errors": book.other_errors,
        "retry_after_ms": summarize([r / 1000 for r in book.refused.values() if r is not None]),
        "overload_delivery": during,
        "phases": by_phase,
        "recovery_s": recovery_s,
        "acked_missing_after_sync": missing,
        "timeline": timeline,
        "cpu": cpu.as_json(),
    }
    progress.done(
        f"overload {sizes.capacity}->{2 * sizes.capacity}->{sizes.capacity}/s:"
        f" refused {len(book.refused)}, p99 while overloaded"
        f" {during['p99_ms']} ms, recovery {recovery_s} s,"
        f" acked but missing after sync {missing}; p50/p99 ms before"
        f" {by_phase['before']['p50_ms']}/{by_phase['before']['p99_ms']}, 10 s after the fall on"
        f" {by_phase['after_rest']['p50_ms']}/{by_phase['after_rest']['p99_ms']}"
    )
    return result


async def _open_pairs(system: System, pairs: int, prefix: str, book: _Book) -> list[LoadClient]:
    """Connect ``2 * pairs`` users named ``prefix`` + their number, their frames into ``book``
    (client n sends to client n ^ 1)."""
    on_frame = _recorder(book)
    return [
        await LoadClient.open(system.ws_url, n, f"{prefix}{n}", on_frame) for n in range(2 * pairs)
    ]


def _recorder(book: _Book) -> Callable[[LoadClient, Frame, float], None]:
    """A client's frame handler that writes acks, deliveries and refusals into ``book``."""

    def on_frame(client: LoadClient, frame: Frame, now: float) -> None:
        kind = frame["type"]
        if kind == "ack":
            book.acked_at.setdefault(int(frame["id"]), now)
        elif kind == "message.new":
            message = frame["message"]
            if message["sender_id"] != client.user_id:
                book.delivered_at.setdefault(int(message["client_msg_id"]), now)
        elif kind == "error":
            code = str(frame.get("code"))
            if code == "unavailable" and frame.get("id") is not None:
                book.refused[int(frame["id"])] = frame.get("retry_after_ms")
            else:
                book.other_errors[code] = book.other_errors.get(code, 0) + 1

    return on_frame


async def _offer(
    clients: list[LoadClient], book: _Book, rate: int, seconds: float, progress: Progress
) -> None:
    """Open loop: each client sends its share at fixed times whatever the answers; a
    connection the gateway reads slowly (its backpressure) delays only its own sends."""
    count = len(clients)
    interval = count / rate
    start = time.perf_counter()
    sent_before = len(book.sent_at)

    async def one(client: LoadClient) -> None:
        peer = clients[client.number ^ 1]
        async for _ in paced(start, start + client.number / rate, interval, seconds):
            index = len(book.sent_at)
            book.sent_at.append(time.perf_counter())
            book.route.append((client.number, peer.number))
            await client.send_message(peer.user_id, index)

    sending = asyncio.gather(*(one(client) for client in clients))
    while not sending.done():
        progress.update(
            f"overload {rate}/s sent={len(book.sent_at) - sent_before}/{int(rate * seconds)}"
            f" acked={len(book.acked_at)} refused={len(book.refused)}"
        )
        await asyncio.sleep(0.25)
    await sending


async def _settle(book: _Book, timeout_s: float, progress: Progress) -> None:
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        waiting = sum(
            1
            for i in range(len(book.sent_at))
            if i not in book.refused and (i not in book.acked_at or i not in book.delivered_at)
        )
        if not waiting:
            return
        progress.update(f"overload: {waiting} accepted messages still on their way")
        await asyncio.sleep(0.2)


async def _missing_after_sync(clients: list[LoadClient], book: _Book, progress: Progress) -> int:
    """Acked messages absent from their sender's or recipient's synced chat stream."""
    progress.update("overload: syncing every user to check that nothing acked is lost", force=True)
    synced: dict[int, set[str]] = {}
    for client in clients:
        frames = await client.sync_all(0)
        synced[client.number] = {
            f["message"]["client_msg_id"] for f in frames if f.get("type") == "message.new"
        }
    missing = 0
    for index in book.acked_at:
        sender, recipient = book.route[index]
        missing += str(index) not in synced[sender]
        missing += str(index) not in synced[recipient]
    return missing


def _timeline(book: _Book, started: float) -> list[dict[str, Any]]:
    seconds: dict[int, list[int]] = {}
    for index, sent in enumerate(book.sent_at):
        seconds.setdefault(int(sent - started), []).append(index)
    rows = []
    for second in sorted(seconds):
        indexes = seconds[second]
        delivered = [
            book.delivered_at[i] - book.sent_at[i] for i in indexes if i in book.delivered_at
        ]
        figures = summarize(delivered)
        rows.append(
            {
                "second": second,
                "offered": len(indexes),
                "acked": sum(1 for i in indexes if i in book.acked_at),
                "refused": sum(1 for i in indexes if i in book.refused),
                "p50_ms": figures["p50_ms"],
                "p99_ms": figures["p99_ms"],
            }
        )
    return rows


def _recovery_s(timeline: list[dict[str, Any]], fall_s: float, p99_limit_ms: float) -> float | None:
    """Seconds from the fall of the load to the first second from which every later second
    is healthy (p99 under the limit, nothing refused); None if it never recovered."""
    after = [row for row in timeline if row["second"] >= int(fall_s)]
    if not after:
        return None
    recovered_at = None
    for row in after:
        healthy = row["refused"] == 0 and row["p99_ms"] < p99_limit_ms
        if not healthy:
            recovered_at = None
        elif recovered_at is None:
            recovered_at = row["second"]
    if recovered_at is None:
        return None
    return round(max(float(recovered_at) - fall_s, 0.0), 1)
