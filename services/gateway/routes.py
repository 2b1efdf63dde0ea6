"""One table from client frame type to its handler (:data:`ROUTES`).

A frame is either handed on as a command to the service that applies it, which answers it
through the delivery topic (:class:`Publish`, built by :mod:`services.gateway.domain.commands`;
the gateway answers only when Kafka does not take it, or when load shedding refuses it because
the system is behind: ``unavailable``, the latter with ``retry_after_ms``), or answered here (ping;
sync, conversations.list, history and search, notifications.list and notification.prefs.get,
read from their owner over internal HTTP). Adding a frame type is an entry here and its model
in :mod:`schemas.frames`; a unit test holds the table and the models together.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from aiokafka.errors import KafkaError

from schemas.frames import Ack, ClientFrame, Ping, Pong, Sync
from services.gateway.domain import commands
from services.gateway.domain.commands import Command, Requester
from services.gateway.domain.errors import FrameError, UpstreamUnavailable
from services.gateway.domain.shedding import LoadShedder
from services.gateway.publisher import CommandPublisher
from services.gateway.reads import ChatReads, NotifierReadFrame, NotifierReads, ReadFrame
from services.gateway.session import Session
from services.gateway.sync import SyncClient
from services.runtime.lifecycle import new_id
from services.runtime.metrics import ERRORS

log = logging.getLogger(__name__)

FrameT = TypeVar("FrameT", bound=ClientFrame)


@dataclass(frozen=True, slots=True)
class Upstream:
    """What frame handlers reach beyond the connection: Kafka, the owners of streams, chat's
    and the notifier's reads."""

    publisher: CommandPublisher
    sync: SyncClient
    reads: ChatReads
    notifier: NotifierReads
    shedder: LoadShedder
    # Commands of one connection enqueued to Kafka and not yet acknowledged, at most.
    max_unconfirmed: int = 64


#: Handles one parsed client frame of a connection.
Route = Callable[[Upstream, Session, Any], Awaitable[None]]


class Publish(Generic[FrameT]):
    """Hand the frame on as the command ``build`` makes of it; the service that applies it
    answers. The client is answered ``unavailable`` (and resends) when the system is behind
    (load shedding; with ``retry_after_ms``) or when Kafka does not take the command.

    The command is enqueued to the producer and the frame loop reads on; Kafka's
    acknowledgement is awaited in the background (at most ``max_unconfirmed`` per connection,
    all to one key: :meth:`Session.publish_slot`).
    """

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[FrameT, Requester], Command]) -> None:
        self._build = build

    async def __call__(self, upstream: Upstream, session: Session, frame: FrameT) -> None:
        shedder = upstream.shedder
        retry_after_ms = shedder.retry_after_ms(time.monotonic())
        if retry_after_ms is not None:
            ERRORS.labels("overloaded").inc()
            session.refuse(
                frame.id, "unavailable", "busy; try again later", retry_after_ms=retry_after_ms
            )
            return
        sender = Requester(session.user_id, session.connection_id, upstream.publisher.gateway_id)
        command = self._build(frame, sender)
        await session.publish_slot((command.topic, command.key), upstream.max_unconfirmed)
        request_id = frame.id
        if request_id is not None:
            _await_answer(shedder, session, request_id)
        try:
            delivered = await upstream.publisher.submit(command)
        except KafkaError as exc:
            _not_published(shedder, session, request_id, exc)
            return
        session.publishing()
        delivered.add_done_callback(functools.partial(_confirmed, shedder, session, request_id))


def _await_answer(shedder: LoadShedder, session: Session, request_id: str) -> None:
    shedder.handed_on(session.connection_id, request_id, time.monotonic())
    if session.pending is None:
        session.pending = set()
    session.pending.add(request_id)


def _confirmed(
    shedder: LoadShedder,
    session: Session,
    request_id: str | None,
    delivered: asyncio.Future[object],
) -> None:
    session.published()
    exc = None if delivered.cancelled() else delivered.exception()
    if delivered.cancelled() or exc is not None:
        _not_published(shedder, session, request_id, exc)


def _not_published(
    shedder: LoadShedder, session: Session, request_id: str | None, exc: BaseException | None
) -> None:
    log.warning("command not published", extra={"error": type(exc).__name__})
    if request_id is not None:
        shedder.answered(session.connection_id, request_id)
        if session.pending is not None:
            session.pending.discard(request_id)
    session.refuse(request_id, "unavailable", "try again shortly")


async def ping(upstream: Upstream, session: Session, frame: Ping) -> None:
    """``pong``, with the ping's id: for a ping, the pong is its answer."""
    session.send("pong", Pong(id=frame.id).to_wire())


async def sync(upstream: Upstream, session: Session, frame: Sync) -> None:
    """Every durable frame after the client's cursor, read from each stream's owner."""
    try:
        page = await upstream.sync.sync(
            user_id=session.user_id, cursor=frame.cursor, limit=frame.limit
        )
    except UpstreamUnavailable as exc:
        log.warning("sync failed", extra={"error": str(exc)})
        session.refuse(frame.id, "unavailable", "sync unavailable; try again shortly")
        return
    if frame.id is None:
        return
    ack = Ack(id=frame.id, events=page.events, cursor=page.cursor, has_more=page.has_more)
    session.send("ack", ack.to_wire())


async def read(upstream: Upstream, session: Session, frame: ReadFrame) -> None:
    """conversations.list, history, search: chat's answer, acknowledged here."""
    await _relay(session, frame, upstream.reads.read(frame, user_id=session.user_id))


async def notifier_read(upstream: Upstream, session: Session, frame: NotifierReadFrame) -> None:
    """notifications.list (the bell), notification.prefs.get: the notifier's answer."""
    await _relay(session, frame, upstream.notifier.read(frame, user_id=session.user_id))


async def _relay(session: Session, frame: ClientFrame, answer: Awaitable[dict[str, Any]]) -> None:
    """An owner's answer as the frame's ``ack``; its refusal, or its absence, as ``error``."""
    try:
        fields = await answer
    except FrameError as exc:
        session.refuse(frame.id, exc.code, exc.message)
        return
    except UpstreamUnavailable as exc:
        log.warning("read failed", extra={"error": str(exc)})
        session.refuse(frame.id, "unavailable", "try again shortly")
        return
    if frame.id is not None:
        session.send("ack", orjson.dumps({"type": "ack", "id": frame.id, **fields}))


ROUTES: dict[str, Route] = {
    "message.send": Publish(commands.message_send),
    "receipt": Publish(commands.receipt),
    "presence.set": Publish(commands.status_set),
    "typing": Publish(commands.typing),
    "conversation.create": Publish(functools.partial(commands.conversation_create, new_id=new_id)),
    "conversation.members.add": Publish(commands.members_add),
    "conversation.members.remove": Publish(commands.members_remove),
    "conversation.role.set": Publish(commands.role_set),
    "conversation.update": Publish(commands.conversation_update),
    "message.edit": Publish(commands.message_edit),
    "message.delete": Publish(commands.message_delete),
    "reaction.set": Publish(commands.reaction_set),
    "notification.read": Publish(commands.notification_read),
    "notification.prefs.set": Publish(commands.prefs_set),
    "conversation.mute": Publish(commands.conversation_mute),
    "push.subscribe": Publish(commands.push_subscribe),
    "push.unsubscribe": Publish(commands.push_unsubscribe),
    "sync": sync,
    "conversations.list": read,
    "history": read,
    "search": read,
    "notifications.list": notifier_read,
    "notification.prefs.get": notifier_read,
    "ping": ping,
}


def served_frame_types() -> list[str]:
    """What ``hello.features`` announces: every routed frame type, sorted (a client checks it
    instead of probing with requests that a server without the feature answers
    ``bad_request``, which the error-rate alert counts)."""
    return sorted(ROUTES)
