"""Applies presence commands and conversation facts inside the consumer's transaction.

A change of a user's shown status is announced with a ``presence`` frame to every user who
shares a conversation with them and to the user's own devices, through the outbox (so an
announcement exists exactly when the change committed). When a user's first device connects or
their last one goes away, a ``presence.connectivity.changed`` fact goes to the compacted
``presence.connectivity.v1`` (the notifier pushes to users without a live connection).

Contacts are recomputed from memberships whenever a conversation's members change: people who
start sharing a conversation learn each other's presence at once; people who no longer share
any conversation are each told the other is ``offline`` with no ``last_seen`` — what a user
presence knows nothing about looks like — and hear nothing more of each other.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from schemas import topics
from schemas.events import (
    ConnectionEnded,
    ConnectionOpened,
    ConnectivityChanged,
    ConversationChanged,
    ConversationCreated,
    GatewayHeartbeat,
    OfflineDue,
    StatusSet,
)
from schemas.frames import Ack, Presence
from services.presence import storage
from services.presence.domain import presence
from services.presence.domain.presence import Transition, UserPresence
from services.runtime.codec import EventBuilder, parse_data
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
        events: builds the connectivity facts.
        connectivity_topic: where they go (``presence.connectivity.v1`` of the deployment).
        grace: how long after the last connection closes a user is still shown.
        now: clock, injected.
    """

    def __init__(
        self,
        *,
        delivery: DeliveryWriter,
        events: EventBuilder,
        connectivity_topic: str,
        grace: timedelta,
        now: Callable[[], datetime],
    ) -> None:
        self._delivery = delivery
        self._events = events
        self._connectivity_topic = connectivity_topic
        self._grace = grace
        self._now = now
        # Conversations whose members presence has stored: the members of a direct one (never
        # change), the version applied of a group. A repeat of their fact (the outbox publishes
        # at least once), or an older one, is then a no-op, and the consumer skips its
        # transaction. Bounded; an evicted entry only costs one idempotent statement.
        self._remembered: dict[str, frozenset[str] | int] = {}

    def needs_transaction(self, record: InboundRecord) -> bool:
        """Whether applying ``record`` may change anything (see ``SkippingRecordHandler``)."""
        kind = record.envelope.type
        try:
            if kind == topics.CONVERSATION_CREATED:
                created = parse_data(record.envelope, ConversationCreated)
                known = self._remembered.get(created.conversation_id)
                return not (isinstance(known, frozenset) and known.issuperset(created.member_ids))
            if kind == topics.CONVERSATION_UPDATED:
                changed = parse_data(record.envelope, ConversationChanged)
                applied = self._remembered.get(changed.conversation_id)
                return not (isinstance(applied, int) and applied >= changed.version)
        except RecordRejected:
            return True
        return True

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
            transition = presence.connection_opened(state, opened.connection_id)
            # The row was read after the connection was stored: without it is how it was before.
            before = state.connections - {opened.connection_id}
            self._connectivity(before, transition.state, out)
            await self._commit(conn, transition, out)
        elif kind == topics.CONNECTION_CLOSED:
            closed = parse_data(envelope, ConnectionEnded)
            if not await storage.connection_known(conn, closed.connection_id):
                # A repeat, or a connection erased with its user: nothing to change, and no
                # row to create for a user presence no longer knows.
                return
            state = await storage.lock_user(conn, closed.user_id)
            await storage.remove_connection(conn, closed.connection_id)
            transition = presence.connection_closed(
                state,
                closed.connection_id,
                now=self._now(),
                expired_at=(closed.last_seen or self._now()) if closed.expired else None,
            )
            self._connectivity(state.connections, transition.state, out)
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
            known = await storage.lock_known_user(conn, due.user_id)
            if known is None:
                # The sweeper saw the user before they were erased (or purged).
                return
            state = known
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
            self._remember(created.conversation_id, frozenset(created.member_ids))
        elif kind == topics.CONVERSATION_UPDATED:
            changed = parse_data(envelope, ConversationChanged)
            diff = await storage.replace_members(
                conn, changed.conversation_id, version=changed.version, user_ids=changed.member_ids
            )
            if diff is not None:
                added, removed = diff
                if added:
                    await self._introduce(
                        conn, changed.member_ids, set(added), out, visible_only=True
                    )
                if removed:
                    await self._part(conn, changed.member_ids, removed, out)
            self._remember(changed.conversation_id, changed.version)
        else:
            raise RecordRejected(f"unknown_type:{kind[:64]}")

    def _connectivity(
        self, before: frozenset[str], after: UserPresence, out: list[OutboundRecord]
    ) -> None:
        """Stage the user's connectivity fact when their first device came or last one went."""
        connected = presence.connectivity_flip(before, after.connections)
        if connected is None:
            return
        fact = ConnectivityChanged(
            user_id=after.user_id, connected=connected, changed_at=self._now()
        )
        out.append(
            self._events.record(
                self._connectivity_topic,
                topics.CONNECTIVITY_CHANGED,
                key=after.user_id,
                data=fact.to_dict(),
            )
        )

    def _remember(self, conversation_id: str, known: frozenset[str] | int) -> None:
        if len(self._remembered) >= _REMEMBERED_MAX:
            # Oldest first (dicts keep insertion order): a cheap approximation of LRU.
            del self._remembered[next(iter(self._remembered))]
        self._remembered[conversation_id] = known

    async def _part(
        self, conn: Connection, members: list[str], removed: list[str], out: list[OutboundRecord]
    ) -> None:
        """People who no longer share any conversation each see the other go offline, with no
        last_seen: what a user presence knows nothing about looks like. Nothing more of the
        other reaches them (contacts are read from memberships for every announcement)."""
        pairs = [
            (gone, other) for gone in removed for other in [*members, *removed] if other != gone
        ]
        frame_of = {
            user: Presence(user_id=user, status="offline", last_seen=None).to_wire()
            for user in {*members, *removed}
        }
        for gone, other in await storage.strangers(conn, pairs):
            out.append(self._delivery.frame(gone, frame_of[other]))
            if other not in removed:
                out.append(self._delivery.frame(other, frame_of[gone]))

    async def _introduce(
        self,
        conn: Connection,
        members: list[str],
        added: set[str],
        out: list[OutboundRecord],
        *,
        visible_only: bool = False,
    ) -> None:
        """New contacts learn each other's presence at once, not at the next change.

        ``visible_only`` (groups): only members shown online, away or busy are introduced. A
        group of 256 brings up to 65,280 new pairs at once; a client shows a member it has
        heard nothing about as offline anyway, so offline members cost no frame.
        """
        known = await storage.peek_users(conn, members)
        now = self._now()
        frames: dict[str, bytes] = {}
        for subject in members:
            state = known.get(subject) or UserPresence.unknown(subject)
            if not (visible_only and state.shown == "offline"):
                frames[subject] = presence_frame(state, now=now).to_wire()
        for viewer in members:
            for subject, frame in frames.items():
                if subject == viewer or (subject not in added and viewer not in added):
                    continue
                out.append(self._delivery.frame(viewer, frame))

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
