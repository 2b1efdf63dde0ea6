"""Building records for ``delivery.frames.v1``: one frame for one user (or one connection), or
the order to close every connection of a user.

Every service that talks to clients (chat, presence, notifier) writes these; gateways push
them to the user's live connections (``delivery.frame``) or close those (``delivery.close``:
presence, when the user is erased).
"""

from __future__ import annotations

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
        data: dict[str, object] = {"user_id": user_id, "frame": orjson.Fragment(frame)}
        if origin is not None:
            data["origin_time"] = origin
        if connection_id is not None:
            data["connection_id"] = connection_id
        return self._events.record(self._topic, DELIVERY_FRAME, key=user_id, data=data)

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
