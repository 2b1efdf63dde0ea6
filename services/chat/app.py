"""Composition root of the chat service: what it is, and the parts that are its own.

The runtime's start-up (:mod:`services.runtime.service`) does the rest: topics, migrations,
pool, producer, outbox, the consumer's run, the read route of the ``chat`` stream, readiness,
HTTP and ordered shutdown. The service adds its own reads (list, history, search) to that HTTP.

    chat.commands.v1 --consumer--> ChatCommandHandler --tx--> Postgres --outbox--> Kafka
    users.erasure.v1 --consumer (its own group)--> ChatEraser --tx--> Postgres --outbox--> Kafka
"""

from __future__ import annotations

from pathlib import Path

from services.chat import storage
from services.chat.emit import Emitter
from services.chat.erasure import ChatEraser
from services.chat.handlers import ChatCommandHandler
from services.chat.http import add_read_routes
from services.chat.settings import ChatSettings
from services.runtime.service import Kit, Service


async def compose(kit: Kit[ChatSettings]) -> None:
    """The chat command handler, applied by one transactional consumer; the chat part of
    erasures, applied by another."""
    handler = ChatCommandHandler(
        topic_names=kit.topics,
        events=kit.events,
        delivery=kit.delivery,
        outbox=kit.outbox,
        now=kit.now,
        new_id=kit.new_id,
    )
    kit.consume(
        group_id=kit.settings.consumer_group,
        topics=[kit.topics.chat_commands],
        handler=handler,
        max_batch_records=kit.settings.chat_max_batch_records,
    )
    kit.erase_with(
        ChatEraser(
            emit=Emitter(events=kit.events, delivery=kit.delivery),
            topic_names=kit.topics,
            outbox=kit.outbox,
        ),
        group_id=kit.settings.consumer_group + "-erasure",
    )
    add_read_routes(kit.http, pool=kit.pool, now=kit.now)


SERVICE = Service(
    name="chat",
    schema=storage.SCHEMA,
    settings=ChatSettings,
    compose=compose,
    migrations=Path(__file__).parent / "migrations",
    streams=(storage.STREAM,),
)
