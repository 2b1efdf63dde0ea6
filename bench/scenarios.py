"""The scenarios of ``python -m bench`` (issue 4), each returning its part of the result; the
group and read scenarios of issue 9 are in bench/groups.py.

latency    pairs at 100 .. 5,000 msgs/s; stops at the first step the system cannot keep up
sustained  highest rate with p99 < 100 ms for the whole probe and nothing lost (sync check)
idle       thousands of idle connections: gateway RSS per connection, time to open them,
           then the latency of a light load beside them
fanout     one message to a user with 10 open devices
hops       low load, each message's time split by hop (bench/hops.py)
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field

from bench.client import Frame, LoadClient, Tracker
from bench.load import PairLoad, StepResult
from bench.progress import Progress, bar
from bench.stats import summarize
from bench.system import ROOT, BenchError, CpuMeter, System, analyze, rss_bytes


@dataclass(frozen=True)
class Sizes:
    """Sizes of every scenario (the defaults finish in a few minutes on 2 cores)."""

    users: int = 200  # users of the latency and sustained scenarios (in pairs)
    rates: tuple[int, ...] = (100, 500, 1000, 2000, 5000)  # latency steps, msgs/s
    step_s: float = 10.0  # seconds each latency step offers load
    drain_s: float = 10.0  # how long a step waits for stragglers before counting them lost
    # Unmeasured load before the first step: a broker restarted moments ago (the test suite
    # restarts the local one) runs its JIT-cold code at up to twice the CPU for a while.
    warmup_s: float = 15.0
    warmup_rate: int = 300
    saturation_p99_ms: float = 1000.0  # a step whose p99 exceeds this is past the limit
    sustain_s: float = 20.0  # seconds each sustained-rate probe lasts (the figure: 60)
    sustain_probes: int = 3  # probes of the sustained-rate search
    sustain_p99_ms: float = 100.0
    # Quiet time before the first probe: the latency scenario ends past the limit, and the
    # drained backlog leaves Postgres (autovacuum, checkpoint) and Kafka busy for a while.
    sustain_settle_s: float = 15.0
    # The target is 20,000; a gateway whose open-file limit cannot be raised past 20,000 (no
    # CAP_SYS_RESOURCE, as on the bench machine) can hold a few dozen fewer.
    idle_connections: int = 19_900
    idle_per_ip: int = 10_000  # connections per 127.0.0.x source address
    idle_check_rate: int = 100  # msgs/s of the check beside the idle connections
    idle_check_s: float = 10.0
    fanout_devices: int = 10
    fanout_messages: int = 300
    fanout_rate: int = 30  # msgs/s
    hops_messages: int = 200  # traced hop by hop, one sender to one recipient
    hops_rate: float = 20.0  # msgs/s: low load, where the hops are not hidden by queueing
    # Group fan-out (bench/groups.py): every member connected, one sender.
    group_members: int = 256
    group_messages: int = 200
    group_rate: float = 5.0  # msgs/s: each one is 256 frames out
    group_settle_s: float = 20.0  # presence traffic of 256 members connecting passes first
    # Reads (bench/groups.py) over a data set written with COPY (bench/chatdata.py).
    read_messages: int = 1_000_000
    read_conversations: int = 20_000
    read_users: int = 20_000
    read_requests: int = 500
    # One job alert to notify_users recipients in notify_events events, notify_connected of
    # them connected (--full: the 10,000 / 10 / 500).
    notify_users: int = 1_000
    notify_events: int = 10
    notify_connected: int = 50
    # Recipients who had a notification before (stream, unread count stored) instead of new.
    notify_known: bool = False
    # A warm-up alert as large as the measured one, to other users (see bench/notifications.py).
    notify_warm: bool = False


@dataclass
class LatencyOutcome:
    """Steps run, and where (and why) the system stopped keeping up."""

    steps: list[StepResult] = field(default_factory=list)
    limit_rate: int | None = None
    limit_reason: str | None = None


def keeps_up(step: StepResult, *, p99_limit_ms: float) -> str | None:
    """Why a step shows the system (or the generator) not keeping up; None when it did."""
    if step.achieved_rate < 0.95 * step.rate:
        return f"load generator sent only {step.achieved_rate:.0f} msgs/s"
    if step.lost:
        return f"{step.lost} of {step.sent} messages not acked and delivered within the drain"
    if step.delivery["p99_ms"] > p99_limit_ms:
        return f"p99 {step.delivery['p99_ms']:.0f} ms > {p99_limit_ms:.0f} ms"
    return None


async def latency(
    load: PairLoad, meter: CpuMeter, sizes: Sizes, progress: Progress, *, database_url: str
) -> LatencyOutcome:
    """Scenario 1: latency at each offered rate until the system cannot keep up."""
    outcome = LatencyOutcome()
    if sizes.warmup_s > 0:
        warmup = await load.run(
            sizes.warmup_rate, sizes.warmup_s, drain_s=sizes.drain_s, label="warm-up"
        )
        await load.wait_settled(warmup.first_index, warmup.last_index, timeout_s=180.0)
        await analyze(database_url)
        progress.done(f"warm-up   {sizes.warmup_rate:>5}/s  {sizes.warmup_s:.0f} s (not measured)")
    for rate in sizes.rates:
        with meter.measure() as cpu:
            step = await load.run(rate, sizes.step_s, drain_s=sizes.drain_s, label="latency")
        step.cpu = cpu.as_json()
        outcome.steps.append(step)
        reason = keeps_up(step, p99_limit_ms=sizes.saturation_p99_ms)
        progress.done(
            f"latency {rate:>5}/s  p50 {step.delivery['p50_ms']:7.1f} ms  "
            f"p99 {step.delivery['p99_ms']:7.1f} ms  ack p99 {step.ack['p99_ms']:7.1f} ms  "
            f"lost {step.lost}" + (f"  -> limit: {reason}" if reason else "")
        )
        if reason is not None:
            outcome.limit_rate, outcome.limit_reason = rate, reason
            # Let the backlog drain so the next scenario starts from an idle system.
            await load.wait_settled(step.first_index, step.last_index, timeout_s=180.0)
            break
    return outcome


@dataclass
class Probe:
    """One sustained-rate probe."""

    rate: int
    passed: bool
    reason: str | None
    step: StepResult
    missing_after_sync: int

    def as_json(self) -> dict[str, object]:
        """The probe in the result file."""
        return {
            "rate": self.rate,
            "passed": self.passed,
            "reason": self.reason,
            "missing_after_sync": self.missing_after_sync,
            **self.step.row(),
        }


async def sustained(
    load: PairLoad,
    meter: CpuMeter,
    sizes: Sizes,
    progress: Progress,
    latency_steps: list[StepResult],
) -> tuple[int | None, list[Probe]]:
    """Scenario 2: the highest rate whose p99 stays under the limit for a whole probe with
    nothing lost, found by bisection between the latency steps that passed and failed.

    Returns:
        (the highest passing rate or None, every probe run).
    """
    passing = [s.rate for s in latency_steps if _sustain_verdict(s, 0, sizes) is None]
    failing = [s.rate for s in latency_steps if _sustain_verdict(s, 0, sizes) is not None]
    low = max(passing, default=0)
    high = min((r for r in failing if r > low), default=max(low * 2, 200))
    best: int | None = None
    probes: list[Probe] = []
    candidate = low if low else high // 2
    progress.update(f"sustain: {sizes.sustain_settle_s:.0f} s of quiet first", force=True)
    await asyncio.sleep(sizes.sustain_settle_s)
    for _ in range(sizes.sustain_probes):
        cursors = load.cursors()
        with meter.measure() as cpu:
            step = await load.run(
                candidate, sizes.sustain_s, drain_s=sizes.drain_s, label="sustain"
            )
        step.cpu = cpu.as_json()
        settled = await load.wait_settled(step.first_index, step.last_index, timeout_s=120.0)
        progress.update(f"sustain {candidate}/s: syncing every user to check for loss", force=True)
        missing = await load.verify_synced(step, cursors) if settled else -1
        reason = _sustain_verdict(step, missing, sizes)
        probe = Probe(candidate, reason is None, reason, step, missing)
        probes.append(probe)
        progress.done(
            f"sustain {candidate:>5}/s  {sizes.sustain_s:.0f}s"
            f"  p99 {step.delivery['p99_ms']:7.1f} ms"
            f"  lost {step.lost}  missing after sync {missing}  -> "
            + ("pass" if probe.passed else f"fail: {reason}")
        )
        if probe.passed:
            best = max(best or 0, candidate)
            low = candidate
        else:
            high = candidate
            if low >= high:
                # The latency step's rate did not hold for a whole probe: search below it.
                low = 0
        candidate = _next_candidate(low, high)
        if candidate in {p.rate for p in probes}:
            break
    return best, probes


def _sustain_verdict(step: StepResult, missing: int, sizes: Sizes) -> str | None:
    reason = keeps_up(step, p99_limit_ms=sizes.sustain_p99_ms)
    if reason is None and missing:
        reason = f"{missing} acked messages missing from a synced stream"
    return reason


def _next_candidate(low: int, high: int) -> int:
    """Midpoint, rounded to 10 msgs/s (or to 50 above 1,000)."""
    middle = (low + high) / 2 if low else high / 2
    grain = 50 if middle >= 1000 else 10
    return max(grain, int(round(middle / grain) * grain))


async def idle(
    system: System, meter: CpuMeter, sizes: Sizes, progress: Progress
) -> dict[str, object]:
    """Scenario 3: open idle connections in steps; gateway RSS per connection; then a check load.

    The gateway is restarted first so its memory baseline holds no earlier scenario. Each step's
    new connections are opened by a worker process of their own (bench.idle_worker), because one
    process may not hold more sockets than its open-file limit.
    """
    await system.restart_gateway()
    await asyncio.sleep(2.0)
    pid = system.gateway.pid
    baseline = rss_bytes(pid)
    target = sizes.idle_connections
    marks = (1000, 2500, 5000, 10000, 20000, 40000, 80000)
    steps = sorted({n for n in marks if n < target} | {target})
    rows: list[dict[str, object]] = []
    workers: list[asyncio.subprocess.Process] = []
    opened_total_s = 0.0
    opened = 0
    try:
        with meter.measure() as cpu:
            for goal in steps:
                worker = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bench.idle_worker",
                    system.ws_url,
                    str(opened),
                    str(goal - opened),
                    str(sizes.idle_per_ip),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    cwd=ROOT,
                )
                workers.append(worker)
                took = await _await_worker(worker, opened, target, progress)
                opened = goal
                opened_total_s += took
                await asyncio.sleep(1.0)
                rss = rss_bytes(pid)
                per_conn = (rss - baseline) / goal / 1024
                rows.append(
                    {
                        "connections": goal,
                        "open_s": round(took, 2),
                        "rss_mib": round(rss / 2**20, 1),
                        "rss_per_conn_kib": round(per_conn, 2),
                    }
                )
                progress.done(
                    f"idle {goal:>6} connections  +{took:5.1f}s to open  gateway RSS"
                    f" {rss / 2**20:7.1f} MiB  {per_conn:5.1f} KiB/connection"
                )
        open_cpu = cpu.as_json()
        # A light load beside the idle connections: does a message still arrive quickly?
        load = PairLoad(system.ws_url, 20, progress, label="idlecheck")
        await load.open()
        with meter.measure() as check_cpu:
            check = await load.run(
                sizes.idle_check_rate, sizes.idle_check_s, drain_s=sizes.drain_s, label="idle check"
            )
        check.cpu = check_cpu.as_json()
        progress.done(
            f"idle check {sizes.idle_check_rate}/s beside {target} connections: p99"
            f" {check.delivery['p99_ms']:.1f} ms"
        )
        await load.close()
    finally:
        for worker in workers:
            if worker.stdin is not None:
                worker.stdin.close()
        for worker in workers:
            try:
                await asyncio.wait_for(worker.wait(), 30)
            except TimeoutError:
                worker.kill()
    last = rows[-1]
    return {
        "connections": last["connections"],
        "rss_per_conn_kib": last["rss_per_conn_kib"],
        "p99_ms_after": check.delivery["p99_ms"],
        "open_s": round(opened_total_s, 2),
        "open_per_s": round(target / opened_total_s, 1) if opened_total_s else None,
        "baseline_rss_mib": round(baseline / 2**20, 1),
        "steps": rows,
        "open_cpu": open_cpu,
        "check": check.row(),
    }


async def _await_worker(
    worker: asyncio.subprocess.Process, before: int, target: int, progress: Progress
) -> float:
    """Follow a worker's report until ``ready``; returns the seconds it took to open.

    Raises:
        BenchError: the worker failed or exited.
    """
    assert worker.stdout is not None
    while True:
        line = (await worker.stdout.readline()).decode().strip()
        if not line:
            raise BenchError("idle worker exited before opening its connections")
        word, _, rest = line.partition(" ")
        if word == "progress":
            count = before + int(rest)
            progress.update(f"idle {bar(count / target)} {count}/{target} open")
        elif word == "ready":
            return float(rest.split()[1])
        elif word == "failed":
            raise BenchError(f"idle worker failed: {rest}")


async def fanout(
    system: System, meter: CpuMeter, sizes: Sizes, progress: Progress
) -> dict[str, object]:
    """Scenario 4: a sender messages a user who has ``fanout_devices`` connections open."""
    tracker = Tracker()
    per_device: dict[int, list[float]] = {}

    def on_frame(client: LoadClient, frame: Frame, now: float) -> None:
        kind = frame["type"]
        if kind == "ack":
            tracker.acked_at.setdefault(int(frame["id"]), now)
        elif kind == "message.new" and frame["message"]["sender_id"] != client.user_id:
            per_device.setdefault(int(frame["message"]["client_msg_id"]), []).append(now)

    tag = f"fan-{int(time.time())}"
    sender = await LoadClient.open(system.ws_url, 0, f"{tag}-sender", on_frame)
    devices = [
        await LoadClient.open(system.ws_url, 1, f"{tag}-recipient", on_frame)
        for _ in range(sizes.fanout_devices)
    ]
    recipient = devices[0].user_id
    expected = sizes.fanout_devices

    async def send_all(count: int, rate: float, label: str) -> tuple[int, int]:
        first = len(tracker.sent_at)
        start = time.perf_counter()
        for k in range(count):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index = tracker.next_index(time.perf_counter(), 0, 1)
            await sender.send_message(recipient, index)
            progress.update(f"{label} {bar((k + 1) / count)} {k + 1}/{count}")
        last = first + count
        deadline = time.perf_counter() + sizes.drain_s
        while time.perf_counter() < deadline:
            if all(
                len(per_device.get(i, ())) >= expected and i in tracker.acked_at
                for i in range(first, last)
            ):
                break
            await asyncio.sleep(0.05)
        return first, last

    await send_all(3, 10, "fanout warm-up")
    with meter.measure() as cpu:
        first, last = await send_all(sizes.fanout_messages, sizes.fanout_rate, "fanout")
    every: list[float] = []
    slowest: list[float] = []
    incomplete = 0
    for index in range(first, last):
        times = per_device.get(index, [])
        sent_at = tracker.sent_at[index]
        every.extend(t - sent_at for t in times)
        if len(times) < expected:
            incomplete += 1
        elif times:
            slowest.append(max(times) - sent_at)
    acks = [
        tracker.acked_at[i] - tracker.sent_at[i]
        for i in range(first, last)
        if i in tracker.acked_at
    ]
    all_devices = summarize(every)
    last_device = summarize(slowest)
    await asyncio.gather(sender.close(), *(device.close() for device in devices))
    progress.done(
        f"fanout {expected} devices  p50 {all_devices['p50_ms']:.1f} ms  p99"
        f" {all_devices['p99_ms']:.1f} ms  (last device p99 {last_device['p99_ms']:.1f} ms)"
    )
    return {
        "devices": expected,
        "messages": last - first,
        "rate": sizes.fanout_rate,
        "p50_ms": all_devices["p50_ms"],
        "p95_ms": all_devices["p95_ms"],
        "p99_ms": all_devices["p99_ms"],
        "max_ms": all_devices["max_ms"],
        "last_device_p50_ms": last_device["p50_ms"],
        "last_device_p99_ms": last_device["p99_ms"],
        "ack_p99_ms": summarize(acks)["p99_ms"],
        "incomplete": incomplete,
        "cpu": cpu.as_json(),
    }
