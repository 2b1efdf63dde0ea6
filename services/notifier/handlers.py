"""Applies everything the notifier consumes inside the consumer's transaction, a batch at a time.

Each record becomes an intent (:mod:`services.notifier.domain.inbox`) or a push subscription
command; a batch is then the same few round trips whatever its size (lock the users' streams,
load, write: :mod:`services.notifier.storage`), the pure decisions in between, and what leaves:

- one ``notification.new`` / ``notification.read`` frame per change, appended to the user's
  ``notifications`` stream and delivered live to every device of the user (delivery topic);
- answers to the requesting connection (``ack``, or ``error`` for a refused subscription);
- Web Push jobs staged in the same transaction (``push_storage.stage_pushes``), or cancelled
  for notifications read now.

What is consumed, and what is not ours:

    chat.events.v1               chat.message.created, chat.watermark.moved (read),
                                 chat.message.updated (deleted: its preview is erased from
                                 notifications and their frames), chat.messages.erased (an
                                 erased user's: :mod:`services.notifier.erasure`); any other
                                 fact of chat's (edits, reactions, membership) is not the
                                 notifier's: skipped
    presence.connectivity.v1     presence.connectivity.changed, presence.connectivity.erased
    notifier.commands.v1         notification.read, prefs.set, conversation.mute,
                                 push.subscribe, push.unsubscribe (from gateways)
    jobs.events.v1               job.alert.matched            (deduplicated by (source, id))
    applications.events.v1       application.status.changed   (deduplicated by (source, id))

On the last three, an unknown type or data that does not fit its schema is rejected: the
consumer dead-letters the record with the reason and goes on.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas import topics
from schemas.events import (
    ApplicationStatusChanged,
    ConnectivityChanged,
    ConnectivityErased,
    ConversationMuteCommand,
    JobAlertMatched,
    MessageChanged,
    MessageCreated,
    MessagesErased,
    NotificationPrefsSetCommand,
    NotificationReadCommand,
    PushSubscribeCommand,
    PushUnsubscribeCommand,
    ReplyTo,
    WatermarkMoved,
)
from schemas.frames import Ack, Error, ErrorCode
from services.notifier import erasure_storage, push_storage, storage, wire
from services.notifier.domain.inbox import (
    Answer,
    Connectivity,
    ConversationRead,
    Decisions,
    Intent,
    JobAlert,
    MarkedRead,
    MarkRead,
    MessageArrived,
    Mute,
    Requester,
    SetPrefs,
    Shown,
    StatusChanged,
    decide,
    needs,
)
from services.notifier.domain.push import (
    EndpointAllowList,
    PayloadTooLarge,
    PushMessage,
    PushNotification,
    SubscriptionRejected,
    build_push,
    parse_subscription,
)
from services.notifier.erasure import apply_erased_messages
from services.notifier.metrics import NOT_NOTIFIED, NOTIFICATIONS, UNREAD_UPDATES
from services.runtime.codec import parse_data
from services.runtime.commit_effects import after_commit
from services.runtime.consumer import InboundRecord
from services.runtime.db import Connection, overlapped
from services.runtime.delivery import DeliveryWriter
from services.runtime.erasure import ErasureReports
from services.runtime.errors import RecordRejected
from services.runtime.kafka import TopicNames
from services.runtime.metrics import ERRORS
from services.runtime.outbox import OutboundRecord
from services.runtime.streams import Appends

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushConfig:
    """What the handler needs of Web Push (None when it is not configured).

    Attributes:
        allowlist: hosts subscription endpoints may point at.
        give_up_after: staged pushes are dropped after this long.
        wake: tells the local push worker that jobs were staged (NOTIFY tells the others).
    """

    allowlist: EndpointAllowList
    give_up_after: timedelta
    wake: Callable[[], None]


@dataclass(frozen=True, slots=True)
class _Subscribe:
    requester: Requester
    subscription: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Unsubscribe:
    requester: Requester
    endpoint: str


_Subscription = _Subscribe | _Unsubscribe


@dataclass(frozen=True, slots=True)
class _Erase:
    """A deleted message, whose preview leaves every notification and frame that showed it."""

    conversation_id: str
    message_id: str
    member_ids: tuple[str, ...]


class NotifierHandler:
    """The notifier's :class:`~services.runtime.consumer.BatchRecordHandler`.

    Args:
        topic_names: topic names of this deployment.
        delivery: builds frames for users.
        reports: builds the reports of erasure steps (chat.messages.erased facts).
        now: the clock (injected so tests control it).
        new_id: makes notification ids.
        push: Web Push settings, or None when push is not configured (nothing is staged).
    """

    def __init__(
        self,
        *,
        topic_names: TopicNames,
        delivery: DeliveryWriter,
        reports: ErasureReports,
        now: Callable[[], datetime],
        new_id: Callable[[], str],
        push: PushConfig | None,
    ) -> None:
        self._delivery = delivery
        self._reports = reports
        self._now = now
        self._new_id = new_id
        self._push = push
        self._chat_events = topic_names.chat_events
        # The types each strict topic carries; anything else there is dead-lettered.
        self._types: dict[str, frozenset[str]] = {
            topic_names.presence_connectivity: frozenset(
                {topics.CONNECTIVITY_CHANGED, topics.CONNECTIVITY_ERASED}
            ),
            topic_names.notifier_commands: frozenset(
                {
                    topics.NOTIFICATION_READ,
                    topics.PREFS_SET,
                    topics.CONVERSATION_MUTE,
                    topics.PUSH_SUBSCRIBE,
                    topics.PUSH_UNSUBSCRIBE,
                }
            ),
            topic_names.jobs_events: frozenset({topics.JOB_ALERT_MATCHED}),
            topic_names.applications_events: frozenset({topics.APPLICATION_STATUS_CHANGED}),
        }

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        """Apply one record: a batch of one.

        Raises:
            RecordRejected: an unknown type or data not fitting its schema (dead-lettered).
        """
        await self.apply_batch(conn, [record], out)

    async def apply_batch(
        self, conn: Connection, records: Sequence[InboundRecord], out: list[OutboundRecord]
    ) -> None:
        """Apply a batch in order: the same few round trips for its notifications (lock, load,
        write: :mod:`services.notifier.storage`), one more to stage its pushes, whatever the
        number of records and recipients.

        Raises:
            RecordRejected: a record is malformed (raised before anything is written; the
                consumer re-runs the batch record by record, which dead-letters that one).
        """
        intents: list[Intent] = []
        subscriptions: list[_Subscription] = []
        erasures: list[_Erase] = []
        erased_messages: list[MessagesErased] = []
        forgotten: list[ConnectivityErased] = []
        for record in records:
            parsed = self._parse(record)
            if parsed is None:
                after_commit(NOT_NOTIFIED.labels("other_fact").inc)
            elif isinstance(parsed, _Subscribe | _Unsubscribe):
                subscriptions.append(parsed)
            elif isinstance(parsed, _Erase):
                erasures.append(parsed)
            elif isinstance(parsed, MessagesErased):
                erased_messages.append(parsed)
            elif isinstance(parsed, ConnectivityErased):
                forgotten.append(parsed)
            else:
                intents.append(parsed)
        if intents:
            await self._apply_intents(conn, intents, out)
        # After the batch's notifications are written: a message made and deleted in one
        # batch leaves no preview behind either.
        for erase in erasures:
            await storage.erase_message(
                conn,
                conversation_id=erase.conversation_id,
                message_id=erase.message_id,
                member_ids=erase.member_ids,
            )
        # After the batch's notifications too: an erased user's message notified in this
        # batch loses its preview, a notification made for the erased user goes.
        await apply_erased_messages(conn, erased_messages, reports=self._reports, out=out)
        for erased in forgotten:
            await erasure_storage.forget_connectivity(conn, erased.user_id, erased.erased_at)
        for command in subscriptions:
            await self._subscription(conn, command, out)

    # -- records to intents -----------------------------------------------------------------

    def _parse(
        self, record: InboundRecord
    ) -> Intent | _Subscription | _Erase | MessagesErased | ConnectivityErased | None:
        envelope = record.envelope
        kind = envelope.type
        if record.topic == self._chat_events:
            if kind == topics.MESSAGE_CREATED:
                fact = parse_data(envelope, MessageCreated)
                message = fact.message
                return MessageArrived(
                    conversation_id=message.conversation_id,
                    message_id=message.id,
                    message_seq=message.seq,
                    sender_id=message.sender_id,
                    body=message.body,
                    member_ids=tuple(fact.member_ids),
                )
            if kind == topics.WATERMARK_MOVED:
                moved = parse_data(envelope, WatermarkMoved)
                if moved.status != "read":
                    return None
                return ConversationRead(moved.user_id, moved.conversation_id, moved.up_to_seq)
            if kind == topics.MESSAGE_UPDATED:
                updated = parse_data(envelope, MessageChanged)
                if updated.change != "deleted":
                    return None
                return _Erase(
                    conversation_id=updated.message.conversation_id,
                    message_id=updated.message.id,
                    member_ids=tuple(updated.member_ids),
                )
            if kind == topics.MESSAGES_ERASED:
                return parse_data(envelope, MessagesErased)
            # Chat's other facts (membership) notify nobody.
            return None
        if kind not in self._types.get(record.topic, ()):
            raise RecordRejected(f"unknown_type:{kind[:64]}")
        if kind == topics.JOB_ALERT_MATCHED:
            alert = parse_data(envelope, JobAlertMatched)
            return JobAlert(
                job_id=alert.job_id,
                title=alert.title,
                company=alert.company,
                location=alert.location,
                url=alert.url,
                user_ids=tuple(alert.user_ids),
            )
        if kind == topics.APPLICATION_STATUS_CHANGED:
            changed = parse_data(envelope, ApplicationStatusChanged)
            return StatusChanged(
                application_id=changed.application_id,
                job_id=changed.job_id,
                job_title=changed.job_title,
                candidate_id=changed.candidate_id,
                status=changed.status,
                previous_status=changed.previous_status,
                changed_at=changed.changed_at,
                note=changed.note,
            )
        if kind == topics.CONNECTIVITY_CHANGED:
            fact_ = parse_data(envelope, ConnectivityChanged)
            return Connectivity(fact_.user_id, fact_.connected, fact_.changed_at)
        if kind == topics.CONNECTIVITY_ERASED:
            return parse_data(envelope, ConnectivityErased)
        return self._command(record)

    def _command(self, record: InboundRecord) -> Intent | _Subscription:
        envelope = record.envelope
        kind = envelope.type
        if kind == topics.NOTIFICATION_READ:
            read = parse_data(envelope, NotificationReadCommand)
            ids = None if read.all_ else tuple(read.ids or ())
            return MarkRead(_requester(read.user_id, read.reply_to, envelope.time), ids)
        if kind == topics.PREFS_SET:
            chosen = parse_data(envelope, NotificationPrefsSetCommand)
            requester = _requester(chosen.user_id, chosen.reply_to, envelope.time)
            return SetPrefs(requester, chosen.kind, chosen.in_app, chosen.push)
        if kind == topics.CONVERSATION_MUTE:
            mute = parse_data(envelope, ConversationMuteCommand)
            requester = _requester(mute.user_id, mute.reply_to, envelope.time)
            return Mute(requester, mute.conversation_id, mute.muted)
        if kind == topics.PUSH_SUBSCRIBE:
            sub = parse_data(envelope, PushSubscribeCommand)
            return _Subscribe(
                _requester(sub.user_id, sub.reply_to, envelope.time), sub.subscription
            )
        unsub = parse_data(envelope, PushUnsubscribeCommand)
        return _Unsubscribe(
            _requester(unsub.user_id, unsub.reply_to, envelope.time), unsub.endpoint
        )

    # -- intents to rows, frames and pushes -------------------------------------------------

    async def _apply_intents(
        self, conn: Connection, intents: list[Intent], out: list[OutboundRecord]
    ) -> None:
        need = needs(intents)
        appends = await storage.lock_streams(conn, need.users)
        snapshot = await storage.load(conn, need)
        # Before deciding, which moves the counts of users who have none stored yet.
        counted = frozenset(snapshot.unread)
        now = self._now()
        decisions = decide(
            intents,
            snapshot,
            now=now,
            new_id=self._new_id,
            push_enabled=self._push is not None,
        )
        data_json = storage.DataJson()
        # Seqs first: the write statement needs them (positions, the streams' last seqs), not
        # the frames.
        positions: dict[tuple[str, str], int] = {}
        seqs: list[int] = []
        for change in decisions.changes:
            seq = appends.next_seq(change.user_id)
            seqs.append(seq)
            if isinstance(change, Shown):
                positions[(change.user_id, change.view.id)] = seq
        write = storage.write(
            conn,
            decisions,
            positions=positions,
            appends=appends,
            data_json=data_json,
            counted=counted,
            now=now,
        )
        # The frames and their delivery records (~5 us a frame, 50 ms for a job alert to
        # 10,000 users) are made while Postgres runs the write; the frames are stored after.
        _, records = await overlapped(
            write,
            lambda: self._frames(
                decisions.changes, seqs, appends=appends, data_json=data_json, now=now
            ),
        )
        await storage.store_frames(conn, appends)
        out.extend(records)
        await self._pushes(conn, decisions, now)
        for answer in decisions.answers:
            self._ack(out, answer)
        after_commit(functools.partial(_count, decisions))

    async def _frames(
        self,
        changes: Sequence[Shown | MarkedRead],
        seqs: Sequence[int],
        *,
        appends: Appends,
        data_json: storage.DataJson,
        now: datetime,
    ) -> list[OutboundRecord]:
        """Each change's frame, numbered ``seqs``, added to ``appends`` for storage; returns a
        delivery record for each, in order, all made at the batch's time."""
        notification_new = wire.NotificationNewEncoder()
        frames: list[tuple[str, int, bytes]] = []
        for change, seq in zip(changes, seqs, strict=True):
            if isinstance(change, Shown):
                frame = notification_new(
                    seq,
                    change.view,
                    unread_count=change.unread_count,
                    data_json=data_json(change.view.data),
                )
            else:
                frame = wire.notification_read(seq, change.ids, unread_count=change.unread_count)
            appends.add(change.user_id, seq, frame, _subject(change))
            frames.append((change.user_id, seq, frame))
        return self._delivery.frames_at(frames, time=now)

    async def _pushes(self, conn: Connection, decisions: Decisions, now: datetime) -> None:
        """Stage the batch's pushes and drop those of notifications read now."""
        await storage.cancel_read_pushes(
            conn, notes=sorted(decisions.cancels), users=sorted(decisions.cancel_all)
        )
        if self._push is None or not decisions.pushes:
            return
        messages: list[PushMessage] = []
        for due in decisions.pushes.values():
            view = due.view
            notification = PushNotification(
                id=view.id,
                kind=view.kind,
                title=view.title,
                body=view.body,
                data=view.data,
                created_at=view.created_at,
            )
            try:
                messages.append(
                    build_push(notification, user_id=due.user_id, unread_count=due.unread_count)
                )
            except PayloadTooLarge:
                after_commit(NOT_NOTIFIED.labels("payload_too_large").inc)
        if await push_storage.stage_pushes(
            conn, messages, now=now, give_up_after=self._push.give_up_after
        ):
            self._push.wake()

    async def _subscription(
        self, conn: Connection, command: _Subscription, out: list[OutboundRecord]
    ) -> None:
        """``push.subscribe`` / ``push.unsubscribe``: stored in the batch's transaction."""
        requester = command.requester
        if isinstance(command, _Unsubscribe):
            await push_storage.unsubscribe(
                conn, user_id=requester.user_id, endpoint=command.endpoint
            )
            self._ack(out, Answer(requester))
            return
        if self._push is None:
            self._refuse(out, requester, "unavailable", "Web Push is not configured")
            return
        try:
            subscription = parse_subscription(command.subscription, self._push.allowlist)
        except SubscriptionRejected as exc:
            self._refuse(out, requester, exc.code, f"subscription refused: {exc.reason}")
            return
        await push_storage.subscribe(
            conn, user_id=requester.user_id, subscription=subscription, now=self._now()
        )
        self._ack(out, Answer(requester))

    # -- answers ----------------------------------------------------------------------------

    def _ack(self, out: list[OutboundRecord], answer: Answer) -> None:
        requester = answer.requester
        if requester.request_id is None:
            return
        ack = Ack(id=requester.request_id, unread_count=answer.unread_count, prefs=answer.prefs)
        self._reply(out, requester, ack.to_wire())

    def _refuse(
        self, out: list[OutboundRecord], requester: Requester, code: ErrorCode, message: str
    ) -> None:
        """An ``error`` frame (sent even without a request id: a refusal must be heard)."""
        after_commit(ERRORS.labels(code).inc)
        error = Error(id=requester.request_id, code=code, message=message)
        self._reply(out, requester, error.to_wire())

    def _reply(self, out: list[OutboundRecord], requester: Requester, frame: bytes) -> None:
        out.append(
            self._delivery.frame(
                requester.user_id,
                frame,
                origin=requester.origin,
                connection_id=requester.connection_id,
            )
        )


def _subject(change: Shown | MarkedRead) -> str | None:
    """The message a frame previews (a message notification's latest), so that deleting the
    message can erase it from the stored frame."""
    if isinstance(change, Shown) and change.view.kind == "message":
        message_id = change.view.data.get("message_id")
        return message_id if isinstance(message_id, str) else None
    return None


def _requester(user_id: str, reply_to: ReplyTo, origin: datetime) -> Requester:
    return Requester(
        user_id=user_id,
        connection_id=reply_to.connection_id,
        request_id=reply_to.request_id,
        origin=origin,
    )


def _count(decisions: Decisions) -> None:
    for kind, created in decisions.created.items():
        NOTIFICATIONS.labels(kind, "created").inc(created)
    for kind, updated in decisions.updated.items():
        NOTIFICATIONS.labels(kind, "updated").inc(updated)
    for reason, skipped in decisions.ignored.items():
        NOT_NOTIFIED.labels(reason).inc(skipped)
    shown = sum(1 for change in decisions.changes if isinstance(change, Shown))
    if shown:
        UNREAD_UPDATES.labels("new").inc(shown)
    if len(decisions.changes) > shown:
        UNREAD_UPDATES.labels("read").inc(len(decisions.changes) - shown)
