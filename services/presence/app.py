"""Composition root of the presence service: what it is, and the parts that are its own.

The runtime's start-up (:mod:`services.runtime.service`) does the rest: topics, migrations,
pool, producer, outbox, starting and stopping what is registered here, readiness, HTTP.

    presence.commands.v1, chat.conversations.v1 --consumer--> PresenceHandler --tx--> Postgres
        --outbox--> delivery.frames.v1 (presence frames), presence.connectivity.v1 (facts)
    presence.typing.v1 --typing relay--> delivery.frames.v1         (never stored)
    sweeper (timers) --offline.due, expired connection.closed--> presence.commands.v1
    users.erasure.v1 --consumer (its own group)--> PresenceEraser --tx--> Postgres --outbox-->
        delivery.frames.v1 (offline to contacts, close the user's connections),
        presence.connectivity.v1 (presence.connectivity.erased)
"""

from __future__ import annotations

import functools
from datetime import timedelta
from pathlib import Path

from services.presence import http, storage
from services.presence.domain.typing_indicators import MembershipWait, TypingTracker
from services.presence.erasure import PresenceEraser
from services.presence.handlers import PresenceHandler
from services.presence.settings import PresenceSettings
from services.presence.sweeper import Sweeper
from services.presence.typing_relay import TypingRelay
from services.runtime.kafka import make_consumer
from services.runtime.service import Kit, Service


async def compose(kit: Kit[PresenceSettings]) -> None:
    """The presence handler's consumer, the typing relay, the sweeper, the read routes and the
    presence part of erasures."""
    settings = kit.settings
    grace = timedelta(milliseconds=settings.presence_offline_grace_ms)
    consumer = kit.consume(
        group_id=settings.consumer_group,
        topics=[kit.topics.presence_commands, kit.topics.chat_conversations],
        handler=PresenceHandler(
            delivery=kit.delivery,
            events=kit.events,
            connectivity_topic=kit.topics.presence_connectivity,
            grace=grace,
            now=kit.now,
        ),
    )
    relay = TypingRelay(
        consumer=make_consumer(
            settings.kafka_bootstrap_servers,
            client_id=f"{settings.instance_id}-typing",
            group_id=settings.typing_group,
            start_at="latest",
            auto_commit=True,
        ),
        producer=kit.producer,
        topic=kit.topics.presence_typing,
        pool=kit.pool,
        delivery=kit.delivery,
        tracker=TypingTracker(ttl_s=settings.typing_ttl_ms / 1000),
        wait=MembershipWait(
            wait_s=settings.typing_membership_wait_ms / 1000,
            capacity=settings.typing_membership_wait_capacity,
        ),
    )
    kit.run("typing-relay", relay.run, start=relay.start)
    sweeper = Sweeper(
        pool=kit.pool,
        producer=kit.producer,
        topic=kit.topics.presence_commands,
        events=kit.events,
        grace=grace,
        gateway_expiry=timedelta(milliseconds=settings.presence_gateway_expiry_ms),
        retention=timedelta(days=settings.presence_retention_days),
        # A gateway is declared dead only after Kafka answered for a whole expiry period:
        # during and right after a Kafka outage its heartbeats could not get through.
        caught_up=functools.partial(
            consumer.caught_up, in_contact_for_s=settings.presence_gateway_expiry_ms / 1000
        ),
        now=kit.now,
    )
    # The sweeper retries its own failures forever: it never ends on its own.
    kit.run(
        "sweeper",
        functools.partial(sweeper.run, interval_s=settings.presence_sweep_interval_ms / 1000),
        vital=False,
    )
    kit.erase_with(
        PresenceEraser(
            delivery=kit.delivery,
            events=kit.events,
            connectivity_topic=kit.topics.presence_connectivity,
            now=kit.now,
        ),
        group_id=settings.consumer_group + "-erasure",
    )
    http.add_routes(kit.http, pool=kit.pool, now=kit.now)


SERVICE = Service(
    name="presence",
    schema=storage.SCHEMA,
    settings=PresenceSettings,
    compose=compose,
    migrations=Path(__file__).parent / "migrations",
)
