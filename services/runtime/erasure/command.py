"""``python -m services.runtime.erasure erase-user <user id>``: erase a user everywhere.

    ensure the topics --> tail the user's partition of users.erased.v1 from its end
    --> publish user.erasure.requested on users.erasure.v1 (key: the user id; acks=all)
    --> read reports until every service reported the request and its follow-ups
    --> print one JSON line per report and a summary; exit 0 (or 1: what has not finished)

The request is an ordinary event (CloudEvents, structured mode, made by the runtime's
:class:`~services.runtime.codec.EventBuilder`); the site's own services may publish the same
(docs/publishing-events.md) and read the same reports. Running the command again is safe: each
service erases what is left, and reports zero changes when nothing was.

Reads ``KAFKA_BOOTSTRAP_SERVERS`` and ``KAFKA_TOPIC_PREFIX`` (and the partition settings, to
create the topics when no service has yet) from the environment, like the services.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from schemas import topics
from schemas.events import ErasureRef, UserErased, UserErasureRequested
from services.runtime import codec, lifecycle
from services.runtime.codec import EventBuilder
from services.runtime.erasure import REQUEST_STEP
from services.runtime.errors import RecordRejected
from services.runtime.kafka import (
    TopicNames,
    ensure_topics,
    make_consumer,
    make_producer,
    standard_topics,
)
from services.runtime.partitioning import partition_for_key
from services.runtime.settings import KafkaSettings

#: The services that take part in an erasure.
SERVICES = ("chat", "presence", "notifier")


@dataclass(slots=True)
class Progress:
    """Which services have reported an erasure request done, and which steps remain. Pure.

    A service is done when it reported the request itself and every follow-up step announced
    for it (chat announces the notifier's, one per ``chat.messages.erased`` fact). Reports
    arrive at least once: a step counts once however often it is reported.

    Args:
        request: the request waited for.
        services: the services waited for.
    """

    request: ErasureRef
    services: Sequence[str]
    _reported: dict[str, UserErased] = field(default_factory=dict)
    _announced: dict[str, int] = field(default_factory=dict)
    _steps: dict[str, set[str]] = field(default_factory=dict)
    _totals: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, report: UserErased) -> bool:
        """Take a report into account; returns whether it was new (and of this request)."""
        if report.request != self.request or report.service not in self.services:
            return False
        if report.step == REQUEST_STEP:
            if report.service in self._reported:
                return False
            self._reported[report.service] = report
            for service, count in report.follow_ups.items():
                self._announced[service] = self._announced.get(service, 0) + count
        else:
            steps = self._steps.setdefault(report.service, set())
            if report.step in steps:
                return False
            steps.add(report.step)
        totals = self._totals.setdefault(report.service, {})
        for kind, count in report.changes.items():
            totals[kind] = totals.get(kind, 0) + count
        return True

    def missing(self) -> dict[str, str]:
        """What each unfinished service has yet to report."""
        missing: dict[str, str] = {}
        for service in self.services:
            if service not in self._reported:
                missing[service] = "the request"
                continue
            expected = self._announced.get(service, 0)
            done = len(self._steps.get(service, ()))
            if done < expected:
                missing[service] = f"{expected - done} of {expected} follow-up steps"
        return missing

    @property
    def done(self) -> bool:
        """Every service reported the request and all its announced follow-ups."""
        return not self.missing()

    def summary(self) -> dict[str, dict[str, int]]:
        """What each service changed, its follow-up steps summed in."""
        return {service: dict(totals) for service, totals in self._totals.items()}


async def erase_user(
    settings: KafkaSettings,
    user_id: str,
    *,
    services: Sequence[str],
    timeout_s: float,
    wait: bool,
    emit: Callable[[dict[str, Any]], None],
) -> bool:
    """Publish an erasure request for ``user_id`` and, with ``wait``, follow it to the end.

    Args:
        settings: where Kafka is and how its topics are laid out.
        user_id: the user to erase.
        services: the services whose reports to wait for.
        timeout_s: how long to wait for them.
        wait: False publishes and returns at once.
        emit: receives each line of output (a JSON-ready mapping).

    Returns:
        Whether the request was published (and, with ``wait``, every service reported done).
    """
    names = TopicNames.with_prefix(settings.kafka_topic_prefix)
    await ensure_topics(settings, standard_topics(settings))
    client_id = f"erase-user-{socket.gethostname()}-{lifecycle.new_id()[:8]}"
    producer = make_producer(settings.kafka_bootstrap_servers, client_id=client_id)
    await producer.start()
    tail: AIOKafkaConsumer | None = None
    try:
        if wait:
            partitions = len(await producer.partitions_for(names.users_erased))
            tail = await _tail(settings, names.users_erased, user_id, partitions=partitions)
        events = EventBuilder(
            source=f"/erase-user/{socket.gethostname()}",
            now=lifecycle.utc_now,
            new_id=lifecycle.new_id,
        )
        data = UserErasureRequested(user_id=user_id).to_dict()
        record = events.record(
            names.users_erasure, topics.USER_ERASURE_REQUESTED, key=user_id, data=data
        )
        await producer.send_and_wait(
            record.topic, record.value, key=record.key, headers=list(codec.STRUCTURED_HEADERS)
        )
        envelope = codec.decode(record.value, codec.STRUCTURED_HEADERS)
        ref = ErasureRef(source=envelope.source, id=envelope.id)
        emit({"published": ref.to_dict(), "topic": names.users_erasure})
        if tail is None:
            return True
        return await _follow(tail, Progress(ref, services), timeout_s=timeout_s, emit=emit)
    finally:
        if tail is not None:
            await tail.stop()
        await producer.stop()


async def _tail(
    settings: KafkaSettings, topic: str, user_id: str, *, partitions: int
) -> AIOKafkaConsumer:
    """A consumer of the one partition of ``topic`` (of ``partitions``) holding ``user_id``'s
    reports, at its end (resolved now: every report of a request published after this is
    read)."""
    consumer = make_consumer(
        settings.kafka_bootstrap_servers,
        client_id=f"erase-user-{lifecycle.new_id()[:8]}",
        group_id=None,
        start_at="latest",
    )
    await consumer.start()
    tp = TopicPartition(topic, partition_for_key(user_id.encode(), partitions))
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    await consumer.position(tp)
    return consumer


async def _follow(
    tail: AIOKafkaConsumer,
    progress: Progress,
    *,
    timeout_s: float,
    emit: Callable[[dict[str, Any]], None],
) -> bool:
    """Read reports until ``progress`` is done or ``timeout_s`` passed."""
    deadline = time.monotonic() + timeout_s
    while not progress.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            emit({"done": False, "waiting_for": progress.missing()})
            return False
        batches = await tail.getmany(timeout_ms=int(min(remaining, 1.0) * 1000))
        for records in batches.values():
            for record in records:
                report = _report(record.value, record.headers, record.timestamp)
                if report is not None and progress.add(report):
                    emit(
                        {
                            "service": report.service,
                            "step": report.step,
                            "changes": report.changes,
                        }
                    )
    emit({"done": True, "changes": progress.summary()})
    return True


def _report(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], timestamp_ms: int
) -> UserErased | None:
    """A ``user.erased`` report from a record; None for anything else on the topic."""
    try:
        envelope = codec.decode(value, headers, timestamp_ms=timestamp_ms)
        if envelope.type != topics.USER_ERASED:
            return None
        return UserErased.model_validate(envelope.data)
    except (RecordRejected, ValidationError):
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m services.runtime.erasure erase-user <user id> [--timeout-s N] [--no-wait]``.

    Returns:
        The exit code: 0 when published (and, when waiting, done everywhere), 1 otherwise.
    """
    parser = argparse.ArgumentParser(
        prog="python -m services.runtime.erasure",
        description="Erase a user's data in every service (docs/erasure.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    erase = commands.add_parser("erase-user", help="erase a user and wait until it is done")
    erase.add_argument("user_id", help="the user's id (the sub of their tokens)")
    erase.add_argument(
        "--timeout-s", type=float, default=300.0, help="how long to wait (default 300)"
    )
    erase.add_argument("--no-wait", action="store_true", help="publish and return at once")
    erase.add_argument(
        "--services",
        default=",".join(SERVICES),
        help=f"services whose reports to wait for (default {','.join(SERVICES)})",
    )
    args = parser.parse_args(argv)
    if not 1 <= len(args.user_id) <= 128:
        parser.error("user_id: 1..128 characters")
    try:
        settings = KafkaSettings()
    except ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]).upper() for error in exc.errors())
        parser.error(f"Kafka settings missing or invalid in the environment: {fields}")

    def emit(line: dict[str, Any]) -> None:
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        sys.stdout.flush()

    services = [name for name in args.services.split(",") if name]
    done = asyncio.run(
        erase_user(
            settings,
            args.user_id,
            services=services,
            timeout_s=args.timeout_s,
            wait=not args.no_wait,
            emit=emit,
        )
    )
    return 0 if done else 1
