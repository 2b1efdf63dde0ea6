"""Scenario ``duel``: the same direct-message load against the seed's stack and against us.

The seed's stack is what we replace: one Socket.io server that inserts each message into
Postgres, emits it to the recipient's room and acks it (``bench/peer/server.js``, vendored from
``../shared/peers/socketio-pg``; no broker, no per-user streams, no receipts state, no
idempotency). Both systems get the same load, in one run, on the same machine and the same
Postgres server, measured the same way (the method of ``../shared/peers/duel.py``):

* P sender/recipient pairs (20), fresh users at every rate, every client connected first (ours
  wait for ``hello``: its partition is then tailed);
* an open-loop offered rate spread evenly over the senders for ``step_s`` (10 s), 40-byte
  bodies, each message stamped with a client id; the issue's bodies are 40 x's, one word to
  any search index, so ``bodies="text"`` sends prose of up to 40 bytes instead (a pool of
  distinct sentences from bench/chatdata.py's vocabulary, the same for both systems) for what
  indexing real text costs;
* latency = the recipient's receive time - send time; ack latency = the sender's ack - send;
  lost = sent but not received within ``drain_s`` (3 s) after the last send; the late
  messages (over the p99 limit) grouped into episodes by 100-ms window of their send time,
  which tells a step whose p99 is a few pauses from one whose latency is spread;
* per rate: CPU seconds of every process (``/proc``, psutil) from the first send until every
  message is acked and received (or ``settle_s`` passed), divided by the messages persisted
  (acked): **CPU per persisted message per process**, robust on a shared
  machine where latency is not; Kafka records per message (end offsets of the deployment's
  topics before and after); Postgres commits, rows inserted/updated/deleted and WAL bytes per
  message (``pg_stat_database``, ``pg_stat_user_tables``, ``pg_current_wal_lsn()``); the
  machine's load average when the step started and ended.

Postgres' cumulative statistics reach the shared counters only when a backend reports them
(at most once a second while busy, 10 s after it goes idle), so the counts of a step are read
after a quiet wait of ``stats_wait_s``.

The verdict per system: the highest rate with p99 < 100 ms and nothing lost, and the ratios of
ours to the peer's (rates, p50/p99 at each rate, CPU per message). One 10-s step decides a
verdict, so ``rounds`` runs the whole comparison again (the peer on a fresh database each time)
and reports every round's verdicts and the median ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from bench.chatdata import short_texts
from bench.client import connect_ws, token
from bench.load import paced
from bench.progress import Progress, bar
from bench.stats import late_episodes, summarize
from bench.system import (
    AUTH_SECRET,
    ROOT,
    BenchError,
    CpuMeter,
    CpuWindow,
    System,
    analyze,
    create_database,
    drop_database_quietly,
)

#: 40 bytes, as in the issue's comparison.
BODY = "x" * 40
#: Distinct prose bodies cycled through by ``bodies="text"``.
TEXT_POOL = 20_000
PEER_DIR = ROOT / "bench" / "peer"
#: Roles whose CPU is the system's own (the load generator and other programs are not).
SEED_ROLES = ("peer", "postgres")
OUR_ROLES = ("gateway", "chat", "presence", "notifier", "kafka", "postgres")


@dataclass(frozen=True)
class DuelSizes:
    """Sizes of the duel (defaults: the issue's comparison)."""

    rates: tuple[int, ...] = (1000, 2000, 3000, 4000, 6000)
    pairs: int = 20
    step_s: float = 10.0
    drain_s: float = 3.0
    # Unmeasured load first, for both systems alike: long enough for a broker started moments
    # before to warm up (after 5 s at 500 msgs/s, ours' first step showed Kafka at 0.54-0.66
    # cores against 0.33-0.39 on a warm broker; after 20 s at 1,000, 0.48: better, not all).
    warmup_s: float = 20.0
    warmup_rate: int = 1000
    settle_s: float = 60.0  # longest wait for a backlog to clear before the next rate
    stats_wait_s: float = 11.0  # Postgres backends report idle statistics after 10 s
    p99_limit_ms: float = 100.0
    systems: tuple[str, ...] = ("seed", "ours")
    # One round's verdict turns on whether a 10-s step met a pause (docs/performance.md, "What
    # makes ours' p99"); several rounds give the ratio's spread instead of one draw of it.
    rounds: int = 1
    # "fixed": every body is BODY (the issue's); "text": prose of up to 40 bytes.
    bodies: str = "fixed"


@dataclass
class Tally:
    """Send, receive and ack times of one rate's messages, by client id (first send)."""

    sent: dict[str, float] = field(default_factory=dict)
    got: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    # Messages sent again after an ``unavailable`` (ours: the gateway's load shedding).
    resends: int = 0

    def error(self, code: str) -> None:
        """Count a refusal by code."""
        self.errors[code] = self.errors.get(code, 0) + 1


class Driver(Protocol):
    """One system's clients: connect a user, send a direct message, close."""

    name: str

    async def open(self, user: str, tally: Tally) -> Any: ...

    async def send(self, client: Any, to: str, cid: str, body: str, tally: Tally) -> None: ...

    async def close(self, client: Any) -> None: ...


class SeedDriver:
    """python-socketio clients of bench/peer/server.js (``message:send`` with an ack callback,
    ``message:new`` to the recipient's room)."""

    name = "seed"

    def __init__(self, url: str) -> None:
        self._url = url

    async def open(self, user: str, tally: Tally) -> Any:
        """Connect (token in the Socket.io ``auth`` payload), websocket transport only."""
        import socketio

        client = socketio.AsyncClient(reconnection=False)

        async def on_new(message: dict[str, Any]) -> None:
            if message.get("recipient_id") == user and message.get("client_id"):
                tally.got.setdefault(str(message["client_id"]), time.perf_counter())

        client.on("message:new", on_new)
        await client.connect(self._url, auth={"token": token(user)}, transports=["websocket"])
        return client

    async def send(self, client: Any, to: str, cid: str, body: str, tally: Tally) -> None:
        """Emit one message; the ack callback records the ack time."""
        tally.sent[cid] = time.perf_counter()

        def on_ack(answer: dict[str, Any]) -> None:
            if answer.get("ok"):
                tally.acked[cid] = time.perf_counter()
            else:
                tally.error(str(answer.get("error")))

        await client.emit(
            "message:send",
            {"to": to, "body": body, "kind": "text", "client_id": cid},
            callback=on_ack,
        )

    async def close(self, client: Any) -> None:
        """Disconnect."""
        with contextlib.suppress(Exception):
            await client.disconnect()


class OurDriver:
    """Raw WebSocket clients speaking protocol v1; each waits for ``hello`` before sending."""

    name = "ours"

    def __init__(self, url: str) -> None:
        self._url = url
        self._readers: dict[int, asyncio.Task[None]] = {}
        # Frames sent on each connection, by client id (for resends).
        self._frames: dict[int, dict[str, bytes]] = {}

    async def open(self, user: str, tally: Tally) -> Any:
        """Connect, consume ``hello`` and start reading; a message refused ``unavailable`` is
        sent again after the ``retry_after_ms`` it came with (what a client does), and its
        latency still counts from the first send."""
        ws = await connect_ws(self._url, user)
        frames: dict[str, bytes] = {}
        self._readers[id(ws)] = asyncio.create_task(_read_ours(ws, user, tally, frames))
        self._frames[id(ws)] = frames
        return ws

    async def send(self, client: Any, to: str, cid: str, body: str, tally: Tally) -> None:
        """Send one ``message.send`` whose id and client_msg_id are ``cid``."""
        tally.sent[cid] = time.perf_counter()
        ws: ClientConnection = client
        frame = orjson.dumps(
            {
                "type": "message.send",
                "id": cid,
                "to": to,
                "client_msg_id": cid,
                "kind": "text",
                "body": body,
            }
        )
        self._frames[id(ws)][cid] = frame
        await ws.send(frame, text=True)

    async def close(self, client: Any) -> None:
        """Close and stop reading."""
        ws: ClientConnection = client
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            await asyncio.wait_for(ws.close(), 5)
        self._frames.pop(id(ws), None)
        reader = self._readers.pop(id(ws), None)
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_ours(
    ws: ClientConnection, user: str, tally: Tally, frames: dict[str, bytes]
) -> None:
    perf_counter, loads = time.perf_counter, orjson.loads
    resends: set[asyncio.Task[None]] = set()

    async def resend(cid: str, after_s: float) -> None:
        await asyncio.sleep(after_s)
        frame = frames.get(cid)
        if frame is not None and cid not in tally.acked:
            tally.resends += 1
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame, text=True)

    with contextlib.suppress(ConnectionClosed):
        async for raw in ws:
            now = perf_counter()
            frame = loads(raw)
            kind = frame.get("type")
            if kind == "message.new":
                message = frame.get("message") or {}
                if message.get("sender_id") != user:
                    tally.got.setdefault(str(message.get("client_msg_id")), now)
            elif kind == "ack" and isinstance(frame.get("id"), str):
                tally.acked.setdefault(frame["id"], now)
                frames.pop(frame["id"], None)
            elif kind == "error":
                tally.error(str(frame.get("code")))
                cid = frame.get("id")
                if frame.get("code") == "unavailable" and isinstance(cid, str):
                    after_ms = frame.get("retry_after_ms") or 200
                    task = asyncio.create_task(resend(cid, after_ms / 1000))
                    resends.add(task)
                    task.add_done_callback(resends.discard)


# --- the peer's process ---------------------------------------------------------------------


@dataclass
class Peer:
    """bench/peer/server.js on a database of its own in the bench's Postgres server."""

    process: subprocess.Popen[bytes]
    port: int
    database: str
    database_url: str
    admin_url: str

    @property
    def url(self) -> str:
        """Where python-socketio connects."""
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    async def start(cls, *, admin_url: str, port: int, log_path: Path) -> Peer:
        """Create its database, start ``node server.js`` and wait for it to listen.

        Raises:
            BenchError: Node or the peer's packages are missing, or it did not start.
        """
        if not (PEER_DIR / "node_modules").is_dir():
            raise BenchError("bench/peer/node_modules missing: run `make bench` (npm ci)")
        database = f"peer_{uuid.uuid4().hex[:8]}"
        url = await create_database(admin_url, database)
        env = os.environ | {"DATABASE_URL": url, "PORT": str(port), "AUTH_SECRET": AUTH_SECRET}
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: ASYNC220 - once, at start; runs on its own
                ["node", str(PEER_DIR / "server.js")],
                cwd=PEER_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        peer = cls(process, port, database, url, admin_url)
        deadline = time.monotonic() + 30
        while b"seed peer on" not in log_path.read_bytes():  # noqa: ASYNC240 - a tiny file
            if process.poll() is not None or time.monotonic() > deadline:
                await peer.stop()
                raise BenchError(f"the seed peer did not start; see {log_path}")
            await asyncio.sleep(0.1)
        return peer

    async def stop(self) -> None:
        """Stop the server and drop its database."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        await drop_database_quietly(self.admin_url, self.database)


# --- counts: Kafka records, Postgres work -----------------------------------------------------


class KafkaCounter:
    """Records written to the deployment's topics (sum of end offsets under its prefix)."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        # Only a producer waits for a topic's partitions (metadata) on request.
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        self._prefix = prefix

    async def start(self) -> None:
        """Connect."""
        await self._consumer.start()
        await self._producer.start()

    async def stop(self) -> None:
        """Disconnect."""
        await self._producer.stop()
        await self._consumer.stop()

    async def records(self) -> dict[str, int]:
        """End offsets summed per topic (DLQs included)."""
        from aiokafka import TopicPartition

        names = [t for t in await self._consumer.topics() if t.startswith(self._prefix)]
        partitions = [
            TopicPartition(topic, p)
            for topic in names
            for p in await self._producer.partitions_for(topic)
        ]
        ends = await self._consumer.end_offsets(partitions)
        per_topic: dict[str, int] = {}
        for tp, end in ends.items():
            name = tp.topic[len(self._prefix) :]
            per_topic[name] = per_topic.get(name, 0) + int(end)
        return per_topic


async def postgres_counts(database_url: str) -> dict[str, int]:
    """Cumulative commits, rows written and WAL position of one database (the server's)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT xact_commit FROM pg_stat_database"
            "   WHERE datname = current_database()) AS commits,"
            " coalesce(sum(n_tup_ins), 0) AS inserted, coalesce(sum(n_tup_upd), 0) AS updated,"
            " coalesce(sum(n_tup_del), 0) AS deleted,"
            " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal"
            " FROM pg_stat_user_tables"
        )
    finally:
        await conn.close()
    assert row is not None
    return {key: int(row[key]) for key in ("commits", "inserted", "updated", "deleted", "wal")}


# --- one system at one rate ---------------------------------------------------------------------


@functools.cache
def body_pool(bodies: str) -> tuple[str, ...]:
    """The bodies a duel cycles through (``DuelSizes.bodies``)."""
    if bodies == "fixed":
        return (BODY,)
    if bodies == "text":
        return tuple(short_texts(TEXT_POOL, max_bytes=len(BODY), seed=11))
    raise ValueError(f"unknown duel bodies: {bodies!r} (fixed or text)")


async def _pump(
    driver: Driver,
    tally: Tally,
    senders: list[Any],
    tag: str,
    rate: int,
    seconds: float,
    bodies: Sequence[str],
) -> float:
    """Offer ``rate`` msgs/s over the senders for ``seconds`` (open loop); returns send time."""
    pairs = len(senders)
    interval = pairs / rate
    start = time.perf_counter()

    async def one(i: int) -> None:
        async for n in paced(start, start + i * interval / pairs, interval, seconds):
            body = bodies[(n * pairs + i) % len(bodies)]
            await driver.send(senders[i], f"{tag}-b{i}", f"{tag}-{i}-{n}", body, tally)

    await asyncio.gather(*(one(i) for i in range(pairs)))
    return time.perf_counter() - start


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.perf_counter() + timeout_s
    while not condition():
        if time.perf_counter() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def run_rate(
    driver: Driver,
    *,
    rate: int,
    seconds: float,
    sizes: DuelSizes,
    meter: CpuMeter | None,
    counts: Callable[[], Awaitable[dict[str, Any]]] | None,
    progress: Progress,
    measured: bool = True,
) -> dict[str, Any]:
    """Connect fresh pairs, offer ``rate`` for ``seconds``, drain, close; the step's figures."""
    tally = Tally()
    tag = f"duel-{uuid.uuid4().hex[:6]}"
    progress.update(f"duel {driver.name} {rate}/s: connecting {2 * sizes.pairs} users", force=True)
    senders = [await driver.open(f"{tag}-a{i}", tally) for i in range(sizes.pairs)]
    receivers = [await driver.open(f"{tag}-b{i}", tally) for i in range(sizes.pairs)]
    before = await counts() if counts is not None and measured else None
    load_start = os.getloadavg()
    window: contextlib.AbstractContextManager[CpuWindow | None] = (
        meter.measure() if meter is not None else contextlib.nullcontext()
    )
    with window as cpu:
        pumping = asyncio.create_task(
            _pump(driver, tally, senders, tag, rate, seconds, body_pool(sizes.bodies))
        )
        while not pumping.done():
            progress.update(
                f"duel {driver.name} {rate}/s {bar(len(tally.sent) / max(rate * seconds, 1))}"
                f" sent={len(tally.sent)} received={len(tally.got)}"
            )
            await asyncio.sleep(0.25)
        send_s = await pumping
        await _until(lambda: len(tally.got) >= len(tally.sent), sizes.drain_s)
        in_time = dict(tally.got)
        acked_in_time = len(tally.acked)
        load_end = os.getloadavg()
        # Stragglers are not counted as received, but must not spill into the next step; and
        # the CPU they cost is this step's (CPU per message counts until all is persisted).
        settled = await _until(
            lambda: len(tally.got) >= len(tally.sent) and len(tally.acked) >= len(tally.sent),
            sizes.settle_s,
        )
    for client in senders + receivers:
        await driver.close(client)
    timed = [(t, in_time[k] - t) for k, t in tally.sent.items() if k in in_time]
    latencies = [latency for _, latency in timed]
    acks = [(tally.acked[k] - t) for k, t in tally.sent.items() if k in tally.acked]
    result: dict[str, Any] = {
        "system": driver.name,
        "rate": rate,
        "sent": len(tally.sent),
        "achieved_rate": round(len(tally.sent) / send_s, 1) if send_s else None,
        "received": len(in_time),
        "lost": len(tally.sent) - len(in_time),
        "acked": len(tally.acked),
        "acked_in_time": acked_in_time,
        "settled": settled,
        **summarize(latencies),
        "late_episodes": late_episodes(timed, limit_s=sizes.p99_limit_ms / 1000),
        "ack": summarize(acks),
        "errors": dict(tally.errors),
        "resends": tally.resends,
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in load_end],
    }
    if cpu is not None:
        result["cpu"] = cpu.as_json()
        persisted = max(len(tally.acked), 1)
        roles = SEED_ROLES if driver.name == "seed" else OUR_ROLES
        per_msg = {
            role: round(seconds_used * 1e6 / persisted, 1)
            for role, seconds_used in cpu.seconds.items()
        }
        result["cpu_us_per_msg"] = per_msg
        # A second gateway or chat instance (``gateway-2``) counts with its role.
        result["system_cpu_us_per_msg"] = round(
            sum(v for role, v in per_msg.items() if role.split("-")[0] in roles), 1
        )
    if before is not None and counts is not None:
        await asyncio.sleep(sizes.stats_wait_s)
        after = await counts()
        result["per_msg"] = _per_message(before, after, max(len(tally.acked), 1))
    return result


def _per_message(before: dict[str, Any], after: dict[str, Any], persisted: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in after.items():
        if isinstance(value, dict):
            previous = before.get(key, {})
            per_topic = {
                name: round((count - previous.get(name, 0)) / persisted, 2)
                for name, count in value.items()
                if count - previous.get(name, 0)
            }
            out[key] = per_topic
            out[f"{key}_total"] = round(sum(per_topic.values()), 2)
        else:
            out[key] = round((value - before.get(key, 0)) / persisted, 2)
    return out


# --- the scenario ---------------------------------------------------------------------------


async def duel(
    system: System, meter: CpuMeter, sizes: DuelSizes, progress: Progress, log_dir: Path
) -> dict[str, Any]:
    """Run both systems through every rate (the peer first), ``sizes.rounds`` times; the first
    round's figures, verdicts and ratios at the top, every round's under ``rounds`` with the
    verdicts of all of them side by side (``verdicts``) when there are several."""
    if sizes.rounds < 1:
        raise BenchError(f"the duel needs at least one round, not {sizes.rounds}")
    played = [await _round(system, meter, sizes, progress, log_dir) for _ in range(sizes.rounds)]
    result = {"sizes": dict(vars(sizes)), **played[0]}
    if len(played) > 1:
        result["rounds"] = played
        result["verdicts"] = verdicts(played)
    return result


def verdicts(played: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each round's highest passing rate per system and ours/seed ratio, and the median ratio
    (None when a round lacks either system)."""
    ratios = [round_.get("ratios", {}).get("highest_rate") for round_ in played]
    known = [ratio for ratio in ratios if ratio is not None]
    return {
        "highest_rate": [round_["highest_rate_p99_under_limit"] for round_ in played],
        "ratio": ratios,
        "median_ratio": statistics.median(known) if len(known) == len(ratios) else None,
    }


async def _round(
    system: System, meter: CpuMeter, sizes: DuelSizes, progress: Progress, log_dir: Path
) -> dict[str, Any]:
    """One round: the peer, then ours, through every rate."""
    steps: dict[str, list[dict[str, Any]]] = {}
    if "seed" in sizes.systems:
        peer = await Peer.start(
            admin_url=system.admin_url, port=_free_port(), log_path=log_dir / "peer.log"
        )
        try:
            seed_meter = CpuMeter(lambda: {"peer": peer.process.pid})

            async def seed_counts() -> dict[str, Any]:
                return {"postgres": await postgres_counts(peer.database_url)}

            steps["seed"] = await _run_system(
                SeedDriver(peer.url),
                seed_meter,
                _flatten(seed_counts),
                sizes,
                progress,
                database_url=peer.database_url,
            )
        finally:
            await peer.stop()
    if "ours" in sizes.systems:
        env = system.env
        kafka = KafkaCounter(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"])
        await kafka.start()
        try:

            async def our_counts() -> dict[str, Any]:
                return {
                    "postgres": await postgres_counts(system.database_url),
                    "kafka_records": await kafka.records(),
                }

            steps["ours"] = await _run_system(
                OurDriver(system.ws_url),
                meter,
                _flatten(our_counts),
                sizes,
                progress,
                database_url=system.database_url,
            )
        finally:
            await kafka.stop()
    result: dict[str, Any] = {"steps": steps}
    best = {name: _highest_passing(rows, sizes.p99_limit_ms) for name, rows in steps.items()}
    result["highest_rate_p99_under_limit"] = best
    if "seed" in steps and "ours" in steps:
        result["ratios"] = _ratios(steps["seed"], steps["ours"], best)
    for name in steps:
        progress.done(f"duel {name}: highest rate with p99 < 100 ms, nothing lost: {best[name]}")
    return result


def _flatten(
    counts: Callable[[], Awaitable[dict[str, Any]]],
) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Postgres figures at the top level, Kafka records per topic under ``kafka_records``."""

    async def read() -> dict[str, Any]:
        raw = await counts()
        flat: dict[str, Any] = {f"pg_{k}": v for k, v in raw.pop("postgres").items()}
        flat.update(raw)
        return flat

    return read


async def _run_system(
    driver: Driver,
    meter: CpuMeter,
    counts: Callable[[], Awaitable[dict[str, Any]]],
    sizes: DuelSizes,
    progress: Progress,
    *,
    database_url: str,
) -> list[dict[str, Any]]:
    if sizes.warmup_s > 0:
        await run_rate(
            driver,
            rate=sizes.warmup_rate,
            seconds=sizes.warmup_s,
            sizes=sizes,
            meter=None,
            counts=None,
            progress=progress,
            measured=False,
        )
        await analyze(database_url)
        # The warm-up's Postgres statistics reach the counters only after backends idle a while.
        await asyncio.sleep(sizes.stats_wait_s)
    rows = []
    for rate in sizes.rates:
        row = await run_rate(
            driver,
            rate=rate,
            seconds=sizes.step_s,
            sizes=sizes,
            meter=meter,
            counts=counts,
            progress=progress,
        )
        rows.append(row)
        per_msg = row.get("per_msg", {})
        progress.done(
            f"duel {driver.name:>4} {rate:>5}/s  p50 {row['p50_ms']:8.1f}  p99 {row['p99_ms']:8.1f}"
            f" ms  lost {row['lost']:>6}  cpu/msg {row['system_cpu_us_per_msg']:7.1f} us"
            f"  kafka rec/msg {per_msg.get('kafka_records_total', '-')}"
            f"  pg rows/msg {_rows(per_msg)}  load {row['loadavg_start'][0]}"
        )
    return rows


def _rows(per_msg: dict[str, Any]) -> str:
    if "pg_inserted" not in per_msg:
        return "-"
    return (
        f"+{per_msg['pg_inserted']}/~{per_msg['pg_updated']}/-{per_msg['pg_deleted']}"
        f" commits {per_msg['pg_commits']}"
    )


def _highest_passing(rows: list[dict[str, Any]], p99_limit_ms: float) -> int:
    passing = [
        row["rate"]
        for row in rows
        if row["lost"] == 0 and row["received"] and row["p99_ms"] < p99_limit_ms
    ]
    return max(passing, default=0)


def _ratios(
    seed: list[dict[str, Any]], ours: list[dict[str, Any]], best: dict[str, int]
) -> dict[str, Any]:
    """Ours relative to the peer: > 1 means ours is higher (rates) or costlier (ms, CPU)."""
    by_rate = {row["rate"]: row for row in seed}
    per_rate = []
    for row in ours:
        other = by_rate.get(row["rate"])
        if other is None:
            continue
        per_rate.append(
            {
                "rate": row["rate"],
                "p50": _ratio(row["p50_ms"], other["p50_ms"]),
                "p99": _ratio(row["p99_ms"], other["p99_ms"]),
                "cpu_per_msg": _ratio(
                    row.get("system_cpu_us_per_msg"), other.get("system_cpu_us_per_msg")
                ),
            }
        )
    return {
        "highest_rate": _ratio(best.get("ours"), best.get("seed")),
        "per_rate": per_rate,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 2)


def _free_port() -> int:
    from deploy.local.launcher import free_port

    return free_port()


def table(result: dict[str, Any]) -> list[str]:
    """Lines for the printed summary."""
    lines = ["", "duel (20 pairs, 40-byte DMs): p50 / p99 ms, lost, CPU us per persisted message"]
    steps = result.get("steps", {})
    rates = sorted({row["rate"] for rows in steps.values() for row in rows})
    for rate in rates:
        cells = [f"{rate:>6}/s"]
        for name in ("seed", "ours"):
            row = next((r for r in steps.get(name, []) if r["rate"] == rate), None)
            if row is None:
                continue
            cells.append(
                f"{name} {row['p50_ms']:7.1f} / {row['p99_ms']:8.1f}  lost {row['lost']:>6}"
                f"  cpu {row.get('system_cpu_us_per_msg', 0):6.0f} us"
                f"  late episodes {len(row.get('late_episodes', [])):>3}"
                f"  (load {row['loadavg_start'][0]})"
            )
        lines.append("  ".join(cells))
    best = result.get("highest_rate_p99_under_limit", {})
    lines.append(
        "highest rate with p99 < 100 ms and nothing lost: "
        + ", ".join(f"{name} {rate}" for name, rate in best.items())
    )
    ratios = result.get("ratios")
    if ratios:
        lines.append(f"ours / seed, highest rate: {ratios['highest_rate']}")
    summary = result.get("verdicts")
    if summary:
        lines.append(
            f"{len(summary['ratio'])} rounds (the table shows the first): highest rates "
            + "; ".join(
                ", ".join(f"{name} {rate}" for name, rate in round_best.items())
                for round_best in summary["highest_rate"]
            )
            + f"; ours / seed {summary['ratio']}, median {summary['median_ratio']}"
        )
    return lines
