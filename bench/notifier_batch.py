"""One job alert batch through the notifier's real handler and outbox staging, in-process: where
a burst's time goes, phase by phase, without Kafka, gateways or clients around it.

``python -m bench.notifier_batch`` (after ``make up`` or with ``DATABASE_URL`` set) creates a
scratch database, applies the notifier's migrations, and applies ``--batches`` batches of
``--alerts`` binary-mode ``job.alert.matched`` records of ``--recipients`` new users each, every
batch in a transaction rolled back (so that every recipient is new, as in the bench's
scenario; with ``--known``, the same users in every batch, who had an alert committed before,
as with the bench's ``--notify-known``). Per phase it prints the wall time, the process's CPU
(``time.process_time``: the notifier's Python) and the Postgres backend's CPU
(``/proc/<pid>/schedstat``; the server must run on this machine), means over the batches after
a first one that warms caches. The producer is a stand-in that only builds batches, as the
outbox does beside its staging statement.
docs/performance.md ("Third pass") shows what it measured.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
import uvloop
from aiokafka.producer.message_accumulator import BatchBuilder

from bench.notifications import job_alert
from services.notifier import app, storage
from services.notifier.handlers import NotifierHandler
from services.runtime.codec import EventBuilder, decode
from services.runtime.consumer import InboundRecord
from services.runtime.delivery import DeliveryWriter
from services.runtime.erasure import ErasureReports
from services.runtime.kafka import MAX_BATCH_BYTES, TopicNames
from services.runtime.lifecycle import freeze_start_up, new_id
from services.runtime.migrations import apply_migrations
from services.runtime.outbox import OutboundRecord, Outbox

P = ParamSpec("P")
R = TypeVar("R")


@dataclass
class Phase:
    """Seconds summed over the measured batches."""

    wall: float = 0.0
    python: float = 0.0
    postgres: float = 0.0


@dataclass
class Meter:
    """Phases measured around awaited calls, against one Postgres backend."""

    backend_pid: int = 0
    measuring: bool = False
    phases: dict[str, Phase] = field(default_factory=dict)

    def backend_s(self) -> float:
        with open(f"/proc/{self.backend_pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        wall, python, postgres = time.perf_counter(), time.process_time(), self.backend_s()
        yield
        if self.measuring:
            total = self.phases.setdefault(name, Phase())
            total.wall += time.perf_counter() - wall
            total.python += time.process_time() - python
            total.postgres += self.backend_s() - postgres

    def wrap(
        self, name: str, call: Callable[P, Coroutine[Any, Any, R]]
    ) -> Callable[P, Coroutine[Any, Any, R]]:
        async def measured(*args: P.args, **kwargs: P.kwargs) -> R:
            with self.phase(name):
                return await call(*args, **kwargs)

        return measured


class BatchesOnly:
    """The producer as far as staging uses it: partitions and empty batches, nothing sent."""

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(8))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0, is_transactional=False)


def new_users(count: int) -> list[str]:
    """Users never seen before."""
    tag = uuid.uuid4().hex[:8]
    return [f"{tag}-{n:06d}" for n in range(count)]


def alert_records(names: TopicNames, users: list[str], *, alerts: int) -> list[InboundRecord]:
    """One batch: ``alerts`` job alerts, ``users`` shared out between them."""
    made = []
    for index in range(alerts):
        key, value, headers = job_alert(users[index::alerts])
        made.append(
            InboundRecord(
                topic=names.jobs_events,
                partition=index % 8,
                offset=index,
                key=key,
                envelope=decode(value, headers),
            )
        )
    return made


async def run(
    database_url: str, *, batches: int, alerts: int, recipients: int, known: bool
) -> Meter:
    scratch = f"bench_batch_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    await admin.execute(f'CREATE DATABASE "{scratch}"')
    try:
        url = database_url.rsplit("/", 1)[0] + f"/{scratch}"
        conn = await asyncpg.connect(url)
        try:
            await apply_migrations(
                conn,
                schema=storage.SCHEMA,
                directory=app.SERVICE.migrations,
                runtime_tables=app.SERVICE.runtime_tables,
            )
            return await _measure(
                conn, batches=batches, alerts=alerts, recipients=recipients, known=known
            )
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE "{scratch}" WITH (FORCE)')
        await admin.close()


async def _measure(
    conn: asyncpg.Connection, *, batches: int, alerts: int, recipients: int, known: bool
) -> Meter:
    meter = Meter(backend_pid=conn.get_server_pid())
    # The handler calls these through the module: measured where they are looked up.
    storage.lock_streams = meter.wrap("lock", storage.lock_streams)
    storage.load = meter.wrap("load", storage.load)
    storage.write = meter.wrap("write (delivery records beside)", storage.write)
    names = TopicNames.with_prefix("")
    events = EventBuilder(source="/notifier/bench", now=lambda: datetime.now(UTC), new_id=new_id)
    handler = NotifierHandler(
        topic_names=names,
        delivery=DeliveryWriter(topic=names.delivery, events=events),
        reports=ErasureReports(service="notifier", events=events, topic=names.users_erased),
        now=lambda: datetime.now(UTC),
        new_id=new_id,
        push=None,
    )
    outbox = Outbox(schema=storage.SCHEMA, producer=BatchesOnly())
    freeze_start_up(young_gc_threshold=app.SERVICE.young_gc_threshold)
    seen = new_users(alerts * recipients)
    if known:
        # Committed: every measured batch's recipients then have a stream, an unread count
        # and a notification, as a site's users in service do.
        async with conn.transaction():
            await handler.apply_batch(conn, alert_records(names, seen, alerts=alerts), [])
    for index in range(batches + 1):
        users = seen if known else new_users(alerts * recipients)
        records = alert_records(names, users, alerts=alerts)
        meter.measuring = index > 0
        transaction = conn.transaction()
        await transaction.start()
        out: list[OutboundRecord] = []
        with meter.phase("the handler's batch (all of the above and the rest)"):
            await handler.apply_batch(conn, records, out)
        with meter.phase("staging (producer batches beside)"):
            await outbox.stage(conn, out)
        await transaction.rollback()
    return meter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--alerts", type=int, default=10, help="job alerts per batch")
    parser.add_argument("--recipients", type=int, default=1000, help="users per alert")
    parser.add_argument(
        "--known", action="store_true", help="recipients had a notification before (committed)"
    )
    args = parser.parse_args()
    meter = uvloop.run(
        run(
            os.environ["DATABASE_URL"],
            batches=args.batches,
            alerts=args.alerts,
            recipients=args.recipients,
            known=args.known,
        )
    )
    notifications = args.alerts * args.recipients
    print(f"per batch of {notifications:,} notifications, means of {args.batches} batches")  # noqa: T201
    print(f"{'phase':52s} {'wall ms':>8s} {'Python ms':>10s} {'Postgres ms':>12s}")  # noqa: T201
    for name, total in meter.phases.items():
        per = 1000 / args.batches
        print(  # noqa: T201
            f"{name:52s} {total.wall * per:8.1f} {total.python * per:10.1f}"
            f" {total.postgres * per:12.1f}"
        )


if __name__ == "__main__":
    main()
