"""Composition root of the notifier: what it is, and the parts that are its own.

The runtime's start-up (:mod:`services.runtime.service`) does the rest: topics, migrations,
pool, producer, outbox, the consumer's run, the read route of the ``notifications`` stream,
readiness, HTTP and ordered shutdown.

    chat.events.v1, presence.connectivity.v1, notifier.commands.v1,
    jobs.events.v1, applications.events.v1 --consumer--> NotifierHandler --tx--> Postgres
        --outbox--> delivery.frames.v1;  push jobs --push worker--> push services
    users.erasure.v1 --consumer (its own group)--> NotifierEraser --tx--> Postgres
"""

from __future__ import annotations

from pathlib import Path

from services.notifier import http, storage
from services.notifier.erasure import NotifierEraser
from services.notifier.handlers import NotifierHandler, PushConfig
from services.notifier.push_worker import build_push_worker
from services.notifier.settings import NotifierSettings
from services.runtime.service import Kit, Service


async def compose(kit: Kit[NotifierSettings]) -> None:
    """The handler and its consumer (inbound events deduplicated by (source, id)), the push
    worker when Web Push is configured, the bell's reads, and the notifier's part of
    erasures."""
    settings = kit.settings
    push = None
    if settings.push_enabled:
        worker = build_push_worker(
            settings, pool=kit.pool, database_url=settings.database_url, now=kit.now
        )
        push = PushConfig(
            allowlist=settings.endpoint_allowlist,
            give_up_after=settings.retry_policy.give_up_after,
            wake=worker.wake,
        )
        kit.run("push-worker", worker.run, stop=worker.request_stop)
    handler = NotifierHandler(
        topic_names=kit.topics,
        delivery=kit.delivery,
        reports=kit.erasure_reports,
        now=kit.now,
        new_id=kit.new_id,
        push=push,
    )
    topics = kit.topics
    kit.consume(
        group_id=settings.consumer_group,
        topics=[topics.notifier_commands, topics.chat_events, topics.presence_connectivity],
        handler=handler,
        max_batch_records=settings.notifier_max_batch_records,
        fetch_max_wait_ms=settings.notifier_fetch_wait_ms,
        fetch_min_bytes=settings.notifier_fetch_min_bytes,
    )
    # Other teams' events, in the same group (their stored offsets stay theirs) but fetched as
    # soon as they are there: the hold above is for batching chat's steady stream, and a burst
    # of job alerts waited up to its 100 ms for nothing. The two consumers commit side by side
    # on their own connections; a user's changes are serialised by the user's stream row lock
    # whichever consumer makes them.
    kit.consume(
        group_id=settings.consumer_group,
        topics=[topics.jobs_events, topics.applications_events],
        handler=handler,
        max_batch_records=settings.notifier_max_batch_records,
        dedupe_topics=[topics.jobs_events, topics.applications_events],
        gates_readiness=False,
        parallel_transactions=settings.notifier_parallel_transactions,
    )
    kit.erase_with(NotifierEraser(), group_id=settings.consumer_group + "-erasure")
    http.add_routes(kit.http, pool=kit.pool)


SERVICE = Service(
    name="notifier",
    schema=storage.SCHEMA,
    settings=NotifierSettings,
    compose=compose,
    migrations=Path(__file__).parent / "migrations",
    streams=(storage.STREAM,),
    inbound_dedupe=True,
    # A job alert's batch makes ~10 objects per recipient, alive until it ends: 10 alerts x
    # 1,000 recipients spent 214-255 ms of Python at CPython's 700, 198-209 at 50,000 (bench
    # median 17.0k -> 18.4k stored/s). Not for chat and gateways: their latency rose with it.
    young_gc_threshold=50_000,
)
