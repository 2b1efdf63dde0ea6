"""Applies presence commands and conversation facts inside the consumer's transaction.

A change of a user's shown status is announced with a ``presence`` frame to every user who
shares a conversation with them and to the user's own devices, through the outbox (so an
announcement exists exactly when the change committed).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from schemas import topics
from schemas.events import (
    ConnectionEnded,
    ConnectionOpened,
    ConversationCreated,
    GatewayHeartbeat,
    OfflineDue,
    StatusSet,
)
from schemas.frames import Ack, Presence
from services.presence import storage
from services.presence.domain import presence
from services.presence.domain.presence import Transition, UserPresence
from services.runtime.codec import parse_data
from services.runtime.consumer import InboundRecord
from services.runtime.db import Connection
from services.runtime.delivery import DeliveryWriter
from services.runtime.errors import RecordRejected
from services.runtime.outbox import OutboundRecord

#: Conversations remembered in memory (about 200 bytes each).
_REMEMBERED_MAX = 100_000


def presence_frame(state: UserPresence, *, now: datetime) -> Presence:
    """The frame that tells others about ``state``."""
    status, last_seen = presence.frame_fields(state, now=now)
    return Presence(user_id=state.user_id, status=status, last_seen=last_seen)


class PresenceHandler:
    """The presence service's :class:`~services.runtime.consumer.RecordHandler`.

    Args:
        delivery: builds delivery records (frames for users).
        grace: how long after the last connection closes a user is still shown.
        now: clock, injected.
    """

    def __init__(
        self, *, delivery: DeliveryWriter, grace: timedelta, now: Callable[[], datetime]
    ) -> None:
        self._delivery = delivery
        self._grace = grace
        self._now = now
        # Conversations whose members presence has stored (memberships are never deleted): a
        # repeat of their fact (the outbox publishes at least once) is then a no-op, and the
        # consumer skips its transaction. Bounded; an evicted entry only costs one idempotent
        # statement.
        self._remembered: dict[str, frozenset[str]] = {}

    def needs_transaction(self, record: InboundRecord) -> bool:
        """Whether applying ``record`` may change anything (see ``SkippingRecordHandler``)."""
        if record.envelope.type != topics.CONVERSATION_CREATED:
            return True
        try:
            created = parse_data(record.envelope, ConversationCreated)
        except RecordRejected:
            return True
        known = self._remembered.get(created.conversation_id)
        return known is None or not known.issuperset(created.member_ids)

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        """Apply one record.

        Raises:
            RecordRejected: unknown event type or malformed data (the record is dead-lettered).
        """
        envelope = record.envelope
        kind = envelope.type
        if kind == topics.CONNECTION_OPENED:
            opened = parse_data(envelope, ConnectionOpened)
            await storage.add_connection(
                conn,
                connection_id=opened.connection_id,
                user_id=opened.user_id,
                gateway_id=opened.gateway_id,
            )
            state = await storage.lock_user(conn, opened.user_id)
            await self._commit(conn, presence.connection_opened(state, opened.connection_id), out)
        elif kind == topics.CONNECTION_CLOSED:
            closed = parse_data(envelope, ConnectionEnded)
            state = await storage.lock_user(conn, closed.user_id)
            await storage.remove_connection(conn, closed.connection_id)
            transition = presence.connection_closed(
                state,
                closed.connection_id,
                now=self._now(),
                expired_at=(closed.last_seen or self._now()) if closed.expired else None,
            )
            await self._commit(conn, transition, out)
        elif kind == topics.STATUS_SET:
            chosen = parse_data(envelope, StatusSet)
            state = await storage.lock_user(conn, chosen.user_id)
            await self._commit(
                conn, presence.status_set(state, chosen.status, now=self._now()), out
            )
            if chosen.reply_to.request_id is not None:
                ack = Ack(id=chosen.reply_to.request_id)
                out.append(
                    self._delivery.frame(
                        chosen.user_id,
                        ack.to_wire(),
                        origin=envelope.time,
                        connection_id=chosen.reply_to.connection_id,
                    )
                )
        elif kind == topics.OFFLINE_DUE:
            due = parse_data(envelope, OfflineDue)
            state = await storage.lock_user(conn, due.user_id)
            await self._commit(
                conn, presence.offline_due(state, now=self._now(), grace=self._grace), out
            )
        elif kind == topics.GATEWAY_HEARTBEAT:
            beat = parse_data(envelope, GatewayHeartbeat)
            await storage.record_heartbeat(conn, beat.gateway_id, envelope.time)
        elif kind == topics.CONVERSATION_CREATED:
            created = parse_data(envelope, ConversationCreated)
            added = await storage.remember_members(
                conn, created.conversation_id, created.member_ids
            )
            if added:
                await self._introduce(conn, created.member_ids, set(added), out)
            # Only now: a failure above leaves the record to be applied again, never skipped.
            # The transaction may still roll back, but the consumer then retries this batch
            # until it commits (or the process, and this memory, is gone).
            self._remember(created.conversation_id, created.member_ids)
        else:
            raise RecordRejected(f"unknown_type:{kind[:64]}")

    def _remember(self, conversation_id: str, members: list[str]) -> None:
        if len(self._remembered) >= _REMEMBERED_MAX:
            # Oldest first (dicts keep insertion order): a cheap approximation of LRU.
            del self._remembered[next(iter(self._remembered))]
        self._remembered[conversation_id] = frozenset(members)

    async def _introduce(
        self,
        conn: Connection,
        members: list[str],
        added: set[str],
        out: list[OutboundRecord],
    ) -> None:
        """New contacts learn each other's presence at once, not at the next change."""
        known = await storage.peek_users(conn, members)
        now = self._now()
        for viewer in members:
            for subject in members:
                if subject == viewer or (subject not in added and viewer not in added):
                    continue
                state = known.get(subject) or UserPresence.unknown(subject)
                out.append(self._delivery.frame(viewer, presence_frame(state, now=now).to_wire()))

    async def _commit(
        self, conn: Connection, transition: Transition, out: list[OutboundRecord]
    ) -> None:
        """Persist the new state and, if the shown status changed, stage the announcements."""
        state = transition.state
        await storage.save_user(conn, state)
        if not transition.announce:
            return
        frame = presence_frame(state, now=self._now()).to_wire()
        audience = [*await storage.contacts(conn, state.user_id), state.user_id]
        out.extend(self._delivery.frame(user, frame) for user in audience)
