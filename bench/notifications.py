"""Scenario ``notifications``: one job alert to many users, as the job board publishes it.

``--full`` (the issue's size): 10,000 recipients as 10 ``job.alert.matched`` events of 1,000
each (binary mode, as another team's service publishes), 500 of them connected. Default: a
tenth of that, so a run on a shared machine stays short.

Measured from the moment the first event is handed to Kafka:

- until the last connected recipient has its ``notification.new`` (client clock, one process);
- until the notifier has stored every notification (its ``realtime_notifications_total``,
  polled; the rows are counted in Postgres at the end), hence notifications stored per second;
- CPU of every process meanwhile (notifier, gateway, Kafka, Postgres...), per notification.

Before the measured alert, one small alert warms the path (statements prepared, JIT of the
broker); its recipients are not counted. With ``known``, that alert goes to every recipient
instead: the measured one then finds their streams and unread counts stored, as it would for
users of a site in service (by default every recipient is new: the notifier creates both).
With ``warm``, it is as large as the measured one but goes to other users: the measured
recipients are new, the processes have handled a burst of that size before (memory grown,
caches filled), as those of a site in service have; the default measures a first burst after
start-up.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from bench.client import Frame, LoadClient
from bench.progress import Progress, bar
from bench.system import BenchError, CpuMeter, System
from schemas import topics
from services.runtime.kafka import make_producer

SOURCE = "//bench.example.org/job-board"


async def notifications(
    system: System,
    meter: CpuMeter,
    progress: Progress,
    *,
    users: int,
    events: int,
    connected: int,
    known: bool,
    warm: bool,
    drain_s: float,
) -> dict[str, object]:
    """Run the scenario (see the module docstring); returns its figures."""
    if system.notifier is None:
        raise BenchError("the notifications scenario needs a source with the notifier")
    tag = f"nt{uuid.uuid4().hex[:6]}"
    recipients = [f"{tag}-{i}" for i in range(users)]
    arrived: dict[str, float] = {}

    def on_frame(client: LoadClient, frame: Frame, now: float) -> None:
        if frame["type"] == "notification.new":
            arrived.setdefault(client.user_id, now)

    progress.update(f"notifications: connecting {connected} recipients", force=True)
    clients: list[LoadClient] = []
    for start in range(0, connected, 100):
        chunk = recipients[start : min(start + 100, connected)]
        clients += await asyncio.gather(
            *(
                LoadClient.open(system.ws_url, start + i, user, on_frame)
                for i, user in enumerate(chunk)
            )
        )
    producer = make_producer(system.kafka_bootstrap, client_id=f"{tag}-job-board")
    await producer.start()
    notifiers = [system.notifier, *(s for s in system.more if s.name == "notifier")]
    metrics_urls = [f"http://127.0.0.1:{notifier.port}/metrics" for notifier in notifiers]
    try:
        async with httpx.AsyncClient() as http:
            batches = [recipients[i::events] for i in range(events)]
            if known:
                warm_up = batches
            elif warm:
                warm_up = [[f"{tag}w-{user}" for user in batch] for batch in batches]
            else:
                warm_up = [[f"{tag}w-{i}" for i in range(20)]]
            before = await _stored(http, metrics_urls)
            await _publish(producer, system, warm_up)
            await _until(
                lambda: _stored(http, metrics_urls),
                before + sum(map(len, warm_up)),
                drain_s,
                "warm-up alert",
            )
            if known or warm:
                # The warm-up's frames still on their way to the connected clients are not
                # the measured alert's, nor its delivery records the gateway's work.
                await asyncio.sleep(1.0)
                arrived.clear()
            before = await _stored(http, metrics_urls)
            with meter.measure() as cpu:
                began = time.perf_counter()
                await _publish(producer, system, batches)
                published = time.perf_counter()
                deadline = began + drain_s
                while len(arrived) < connected and time.perf_counter() < deadline:
                    progress.update(
                        f"notifications {bar(len(arrived) / max(connected, 1))}"
                        f" {len(arrived)}/{connected} connected"
                    )
                    await asyncio.sleep(0.02)
                stored_at = await _until(
                    lambda: _stored(http, metrics_urls),
                    before + users,
                    max(deadline - time.perf_counter(), 1.0),
                    "every notification stored",
                )
    finally:
        await producer.stop()
        await asyncio.gather(*(client.close() for client in clients))
    rows = await _rows(system, tag)
    last_connected = max(arrived.values(), default=began) - began
    stored_s = stored_at - began
    window = cpu.as_json()
    cpu_s: dict[str, float] = window["cpu_s"]  # type: ignore[assignment]
    result: dict[str, Any] = {
        "users": users,
        "events": events,
        "connected": connected,
        "connected_reached": len(arrived),
        "known": known,
        "warm": warm,
        # With ``known``, the warm-up alert's rows too.
        "rows_stored": rows,
        "publish_ms": round((published - began) * 1000, 1),
        "last_connected_ms": round(last_connected * 1000, 1),
        "stored_ms": round(stored_s * 1000, 1),
        "stored_per_s": round(users / stored_s) if stored_s > 0 else None,
        "notifiers": len(notifiers),
        # Every instance's together (``notifier``, ``notifier-2``...).
        "notifier_cpu_us_per_notification": round(
            sum(v for k, v in cpu_s.items() if k.split("-")[0] == "notifier") / max(users, 1) * 1e6,
            1,
        ),
        "cpu": window,
    }
    progress.done(
        f"notifications: {users} in {events} events, {connected} connected: last connected"
        f" after {result['last_connected_ms']} ms; stored in {result['stored_ms']} ms"
        f" ({result['stored_per_s']}/s); notifier"
        f" {result['notifier_cpu_us_per_notification']} us CPU each"
    )
    return result


async def _publish(producer: Any, system: System, batches: list[list[str]]) -> None:
    """One ``job.alert.matched`` per batch of recipients, binary mode, then flush."""
    topic = system.topic_prefix + topics.JOBS_EVENTS
    for recipients in batches:
        key, value, headers = job_alert(recipients)
        await producer.send(topic, value, key=key, headers=headers)
    await producer.flush()


def job_alert(recipients: list[str]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """A ``job.alert.matched`` record of a new job, binary mode: key, value and headers."""
    job = f"j-{uuid.uuid4().hex[:8]}"
    data = {
        "job_id": job,
        "title": "Cleared Systems Engineer",
        "company": "Acme",
        "location": "Reston, VA",
        "url": f"https://example.org/jobs/{job}",
        "user_ids": recipients,
    }
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", uuid.uuid4().hex.encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_type", topics.JOB_ALERT_MATCHED.encode()),
        ("content-type", b"application/json"),
    ]
    return job.encode(), orjson.dumps(data), headers


async def _stored(http: httpx.AsyncClient, urls: list[str]) -> float:
    """Job alert notifications the notifier instances have created so far (their counters)."""
    total = 0.0
    for url in urls:
        text = (await http.get(url)).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if (
                    sample.name == "realtime_notifications_total"
                    and sample.labels.get("kind") == "job_alert"
                    and sample.labels.get("change") == "created"
                ):
                    total += sample.value
    return total


async def _until(read: Any, target: float, timeout_s: float, what: str) -> float:
    """Poll ``read()`` until it reaches ``target``; returns the time it did.

    Raises:
        BenchError: not within ``timeout_s``.
    """
    deadline = time.perf_counter() + timeout_s
    while await read() < target:
        if time.perf_counter() > deadline:
            raise BenchError(f"notifications: {what} not within {timeout_s:.0f} s")
        await asyncio.sleep(0.02)
    return time.perf_counter()


async def _rows(system: System, tag: str) -> int:
    """Notifications Postgres holds for the measured recipients."""
    conn = await asyncpg.connect(system.database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM notifier.notifications WHERE user_id LIKE $1",
            f"{tag}-%",
        )
    finally:
        await conn.close()
    return int(count)
