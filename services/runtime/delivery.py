"""Building records for ``delivery.frames.v1``: frames for one user (or one connection), or
the order to close every connection of a user.

Every service that talks to clients (chat, presence, notifier) writes these; gateways push
them to the user's live connections (``delivery.frame``) or close those (``delivery.close``:
presence, when the user is erased). A frame record carries one frame
(:meth:`DeliveryWriter.frame`) or every frame a batch has for one user, in order
(:class:`DeliveryBatch`): under load a consumed batch holds many messages to and from the same
users, and one record per user instead of one per frame is that many fewer records to
produce, store, fetch and parse.

Wire (the ``delivery.frame`` event's ``data``)::

    one frame:   {"user_id", "frame", "origin_time"?, "connection_id"?}
    several:     {"user_id", "frames": [{"frame", "origin_time"?, "connection_id"?}, ...]}

``connection_id`` sends a frame to that one connection (an answer) instead of every connection
of the user. Gateways read both shapes (deploy gateways first when upgrading from a version
that wrote only the first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from schemas.events import DeliveryClose
from schemas.topics import DELIVERY_CLOSE, DELIVERY_FRAME
from services.runtime.codec import EventBuilder
from services.runtime.outbox import OutboundRecord


class DeliveryWriter:
    """Makes delivery records keyed by recipient user id.

    Args:
        topic: the delivery topic of this deployment.
        events: the writing instance's event builder.
    """

    __slots__ = ("_events", "_topic")

    def __init__(self, *, topic: str, events: EventBuilder) -> None:
        self._topic = topic
        self._events = events

    def frame(
        self,
        user_id: str,
        frame: bytes,
        *,
        origin: datetime | None = None,
        connection_id: str | None = None,
    ) -> OutboundRecord:
        """A record carrying ``frame`` (already-encoded JSON) to ``user_id``.

        Args:
            user_id: recipient; also the record key (so the gateway finds its partition).
            frame: the server frame as sent to the client.
            origin: when the command that caused it entered the system (latency metric).
            connection_id: only this connection gets it (answers to requests).
        """
        data = _item(frame, origin, connection_id)
        data["user_id"] = user_id
        return self._events.record(self._topic, DELIVERY_FRAME, key=user_id, data=data)

    def frames_at(
        self, frames: Sequence[tuple[str, int, bytes]], *, time: datetime
    ) -> list[OutboundRecord]:
        """A record for each ``(user_id, seq, frame)``, in order, all made at ``time``: the
        bulk way of :meth:`frame` (no origin, no connection), for a job alert's thousands of
        frames (:meth:`EventBuilder.records_at`). Each frame is the one stored as ``seq`` in
        the user's stream in the same transaction: the outbox keeps the record without it
        (``OutboundRecord.stream_frame``)."""
        dumps = orjson.dumps
        records = self._events.records_at(
            self._topic,
            DELIVERY_FRAME,
            (
                (user, b'{"frame":' + frame + b',"user_id":' + dumps(user) + b"}")
                for user, _, frame in frames
            ),
            time=time,
        )
        for record, (_, seq, frame) in zip(records, frames, strict=True):
            record.stream_frame = (seq, frame)
        return records

    def close(self, user_id: str, *, code: int, reason: str) -> OutboundRecord:
        """A record telling gateways to close every connection of ``user_id``.

        Args:
            user_id: whose connections; also the record key (the partition the gateways that
                hold the user's connections tail).
            code: the WebSocket close code.
            reason: the close reason (never user data).
        """
        data = DeliveryClose(user_id=user_id, code=code, reason=reason).to_dict()
        return self._events.record(self._topic, DELIVERY_CLOSE, key=user_id, data=data)

    def batch(self) -> DeliveryBatch:
        """A collector of frames for users: one record per user when it is done."""
        return DeliveryBatch(self)

    def frames(self, user_id: str, items: list[dict[str, object]]) -> OutboundRecord:
        """A record carrying several frames (items made by :class:`DeliveryBatch`) to a user."""
        if len(items) == 1:
            data = dict(items[0])
            data["user_id"] = user_id
        else:
            data = {"user_id": user_id, "frames": items}
        return self._events.record(self._topic, DELIVERY_FRAME, key=user_id, data=data)


def _item(frame: bytes, origin: datetime | None, connection_id: str | None) -> dict[str, object]:
    item: dict[str, object] = {"frame": orjson.Fragment(frame)}
    if origin is not None:
        item["origin_time"] = origin
    if connection_id is not None:
        item["connection_id"] = connection_id
    return item


class DeliveryBatch:
    """Frames for users gathered while a batch is applied; :meth:`records` makes one record per
    user with that user's frames in the order they were added.

    Order is what a gateway needs: a user's frames reach it in stream order, and on the
    sender's connection ``message.new`` before the ``ack`` (both in the sender's one record).
    Records of different users have no order between them (different keys).
    """

    __slots__ = ("_by_user", "_writer")

    def __init__(self, writer: DeliveryWriter) -> None:
        self._writer = writer
        self._by_user: dict[str, list[dict[str, object]]] = {}

    def add(
        self,
        user_id: str,
        frame: bytes,
        *,
        origin: datetime | None = None,
        connection_id: str | None = None,
    ) -> None:
        """Add a frame (already-encoded JSON) for ``user_id`` (or only ``connection_id``)."""
        items = self._by_user.get(user_id)
        if items is None:
            items = self._by_user[user_id] = []
        items.append(_item(frame, origin, connection_id))

    def records(self) -> list[OutboundRecord]:
        """One record per user, users in the order they first got a frame; then empty."""
        frames = self._writer.frames
        made = [frames(user, items) for user, items in self._by_user.items()]
        self._by_user = {}
        return made
