"""One table from client frame type to its handler (:data:`ROUTES`).

A frame is either handed on as a command to the service that applies it, which answers it
through the delivery topic (:class:`Publish`, built by :mod:`services.gateway.domain.commands`;
the gateway answers only when Kafka does not take it: ``unavailable``), or answered here
(ping; sync, conversations.list, history and search, notifications.list and
notification.prefs.get, read from their owner over internal HTTP). Adding a frame type is an
entry here and its model in :mod:`schemas.frames`; a unit test holds the table and the models
together.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from aiokafka.errors import KafkaError

from schemas.frames import Ack, ClientFrame, Ping, Pong, Sync
from services.gateway.domain import commands
from services.gateway.domain.commands import Command, Requester
from services.gateway.domain.errors import FrameError, UpstreamUnavailable
from services.gateway.publisher import CommandPublisher
from services.gateway.reads import ChatReads, NotifierReadFrame, NotifierReads, ReadFrame
from services.gateway.session import Session
from services.gateway.sync import SyncClient
from services.runtime.lifecycle import new_id

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


#: Handles one parsed client frame of a connection.
Route = Callable[[Upstream, Session, Any], Awaitable[None]]


class Publish(Generic[FrameT]):
    """Hand the frame on as the command ``build`` makes of it; the service that applies it
    answers. When Kafka does not take it, the client is answered ``unavailable`` (and resends).
    """

    __slots__ = ("_build",)

    def __init__(self, build: Callable[[FrameT, Requester], Command]) -> None:
        self._build = build

    async def __call__(self, upstream: Upstream, session: Session, frame: FrameT) -> None:
        sender = Requester(session.user_id, session.connection_id, upstream.publisher.gateway_id)
        try:
            await upstream.publisher.publish(self._build(frame, sender))
        except KafkaError as exc:
            log.warning("command not published", extra={"error": type(exc).__name__})
            session.refuse(frame.id, "unavailable", "try again shortly")


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
