"""The presence service's part of a user's erasure (docs/erasure.md), applied in one
transaction by its own consumer of ``users.erasure.v1`` (:mod:`services.runtime.erasure`).

    delete the user's presence row, live connections and memberships
    their contacts get a presence frame showing them offline, with no last_seen (what a user
        presence knows nothing about looks like), and hear nothing of them afterwards
    gateways are told to close the user's connections (4003)
    presence.connectivity.erased: the notifier forgets the user's connectivity, and the
        compacted topic keeps that as the user's last word instead of their last fact

The closes that follow are of connections presence no longer holds: they change nothing and
create nothing (handlers: a close of an unknown connection is a no-op). Applied again, the
erasure finds nothing to delete; it tells the gateways again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from schemas import topics
from schemas.events import ConnectivityErased
from schemas.frames import Presence
from services.presence import storage
from services.runtime.codec import EventBuilder
from services.runtime.db import Connection
from services.runtime.delivery import DeliveryWriter
from services.runtime.erasure import CLOSE_ERASED, CLOSE_ERASED_REASON, Erased, ErasureRequest
from services.runtime.outbox import OutboundRecord


class PresenceEraser:
    """The presence service's :class:`~services.runtime.erasure.Eraser`.

    Args:
        delivery: builds frames and closes for users.
        events: builds the connectivity fact.
        connectivity_topic: ``presence.connectivity.v1`` of the deployment.
        now: the clock.
    """

    def __init__(
        self,
        *,
        delivery: DeliveryWriter,
        events: EventBuilder,
        connectivity_topic: str,
        now: Callable[[], datetime],
    ) -> None:
        self._delivery = delivery
        self._events = events
        self._connectivity_topic = connectivity_topic
        self._now = now

    async def erase(
        self, conn: Connection, request: ErasureRequest, out: list[OutboundRecord]
    ) -> Erased:
        """Erase the user from presence (see the module docstring)."""
        user = request.user_id
        contacts, deleted = await storage.erase_user(conn, user)
        gone = Presence(user_id=user, status="offline", last_seen=None).to_wire()
        out.extend(self._delivery.frame(contact, gone) for contact in contacts)
        out.append(self._delivery.close(user, code=CLOSE_ERASED, reason=CLOSE_ERASED_REASON))
        fact = ConnectivityErased(user_id=user, erased_at=self._now())
        out.append(
            self._events.record(
                self._connectivity_topic,
                topics.CONNECTIVITY_ERASED,
                key=user,
                data=fact.to_dict(),
            )
        )
        return Erased(changes=deleted)
