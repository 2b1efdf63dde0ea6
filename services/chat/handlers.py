"""Applies chat commands inside the consumer's transaction (Synapse's handler layer).

Each command: check with the pure domain, write through :mod:`services.chat.storage`, and stage
what must leave the service (:class:`~services.chat.emit.Emitter`): one delivery frame per
recipient user (keyed by user id), the answer to the requesting connection, and a fact on
``chat.events.v1``; a batch of sends stages one delivery record per user with all of that
user's frames (the sender's answers included); a conversation created by a send is also
announced, with its members, on ``chat.conversations.v1``. Sends and receipts are applied
here; group changes by :mod:`services.chat.conversations`, message changes by
:mod:`services.chat.changes`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import orjson

from schemas import topics
from schemas.events import (
    ConversationCreated,
    MessageSendCommand,
    ReceiptCommand,
    ReplyTo,
    WatermarkMoved,
)
from schemas.frames import Message, MessageStatus
from services.chat import changes, conversations, storage, wire
from services.chat.changes import MessageCommands
from services.chat.conversations import ConversationCommands
from services.chat.domain.errors import ChatError, Forbidden
from services.chat.domain.messages import (
    BatchRepeat,
    StoredRepeat,
    Target,
    decide_sends,
    resolve_targets,
)
from services.chat.domain.watermarks import apply_receipt, audience
from services.chat.emit import Emitter
from services.runtime.codec import EventBuilder, parse_data
from services.runtime.consumer import InboundRecord
from services.runtime.db import Connection
from services.runtime.delivery import DeliveryWriter
from services.runtime.errors import RecordRejected
from services.runtime.kafka import TopicNames
from services.runtime.outbox import OutboundRecord, Outbox
from services.runtime.streams import Appends

log = logging.getLogger(__name__)


class ChatCommandHandler:
    """The chat service's :class:`~services.runtime.consumer.RecordHandler`.

    Args:
        topic_names: topic names of this deployment.
        events: builds what we emit (source ``/chat/<instance>``).
        delivery: builds frames for users.
        outbox: the service's outbox (group changes withdraw superseded facts from it).
        now: the clock (injected so tests control it).
        new_id: makes message ids.
    """

    def __init__(
        self,
        *,
        topic_names: TopicNames,
        events: EventBuilder,
        delivery: DeliveryWriter,
        outbox: Outbox,
        now: Callable[[], datetime],
        new_id: Callable[[], str],
    ) -> None:
        self._topics = topic_names
        self._now = now
        self._new_id = new_id
        self._emit = Emitter(events=events, delivery=delivery)
        self._conversations = ConversationCommands(
            emit=self._emit, topic_names=topic_names, outbox=outbox, now=now
        )
        self._messages = MessageCommands(emit=self._emit, topic_names=topic_names, now=now)

    async def apply(
        self, conn: Connection, record: InboundRecord, out: list[OutboundRecord]
    ) -> None:
        """Apply one command record.

        Raises:
            RecordRejected: unknown event type or malformed data (the record is dead-lettered).
        """
        envelope = record.envelope
        if envelope.type == topics.MESSAGE_SEND:
            await self._apply_sends(conn, [record], out)
        elif envelope.type == topics.RECEIPT_POST:
            receipt = parse_data(envelope, ReceiptCommand)
            await self._guarded(
                receipt.user_id,
                receipt.reply_to,
                envelope.time,
                out,
                self._receipt(conn, receipt, envelope.time, out),
            )
        elif envelope.type in conversations.COMMAND_TYPES:
            await self._conversations.apply(conn, envelope, out)
        elif envelope.type in changes.COMMAND_TYPES:
            await self._messages.apply(conn, envelope, out)
        else:
            raise RecordRejected(f"unknown_type:{envelope.type[:64]}")

    async def apply_batch(
        self, conn: Connection, records: Sequence[InboundRecord], out: list[OutboundRecord]
    ) -> None:
        """Apply a consumed batch, in order, with set-based statements when it holds only sends.

        The outcome is the one :meth:`apply` would give record by record (same messages, seqs,
        answers and order of staged records); a batch with anything but ``message.send`` in it
        is simply applied record by record.

        Raises:
            RecordRejected: a malformed record (the consumer re-runs the batch record by record,
                which dead-letters exactly that one).
        """
        if any(record.envelope.type != topics.MESSAGE_SEND for record in records):
            for record in records:
                await self.apply(conn, record, out)
            return
        await self._apply_sends(conn, records, out)

    async def _apply_sends(
        self, conn: Connection, records: Sequence[InboundRecord], out: list[OutboundRecord]
    ) -> None:
        """Apply ``message.send`` records in order (one or many: the same statements).

        Raises:
            RecordRejected: a record's data does not fit the command.
        """
        commands = [parse_data(record.envelope, MessageSendCommand) for record in records]
        origins = [record.envelope.time for record in records]
        # Addressing: pure checks first, then every conversation and lookup in one go.
        targets = resolve_targets(commands)
        resolved = [
            (cmd, target)
            for cmd, target in zip(commands, targets, strict=True)
            if isinstance(target, Target)
        ]
        state = await storage.load_send_state(
            conn,
            direct=[
                (target.conversation_id, *target.direct_pair)
                for _, target in resolved
                if target.direct_pair is not None
            ],
            conversation_ids=[target.conversation_id for _, target in resolved],
            keys=[(cmd.sender_id, cmd.client_msg_id) for cmd, _ in resolved],
            reply_to=[
                cmd.reply_to_message_id for cmd in commands if cmd.reply_to_message_id is not None
            ],
        )
        members = state.members
        for conversation in state.created:
            # Presence learns who shares a conversation from these, not from every message.
            introduced = ConversationCreated(
                conversation_id=conversation, kind="direct", member_ids=members[conversation]
            )
            out.append(
                self._emit.fact(
                    self._topics.chat_conversations,
                    topics.CONVERSATION_CREATED,
                    conversation,
                    introduced.to_wire(),
                )
            )
        decisions = decide_sends(
            commands, targets, members=members, stored=state.existing, replied=state.replied
        )
        # Number the new messages and their frames from the locked seqs, in record order. Every
        # frame of a user in this batch (members' message.new, the sender's answers) rides in
        # one delivery record per user, in this order.
        created: dict[int, Message] = {}
        last_seq: dict[str, int] = {}
        appends = Appends(state.stream_seq)
        frames = self._emit.delivery.batch()
        emit = self._emit
        for position, decision in enumerate(decisions):
            cmd, origin = commands[position], origins[position]
            if isinstance(decision, ChatError):
                emit.refuse(out, cmd.sender_id, cmd.reply_to, origin, decision, into=frames)
                continue
            if isinstance(decision, StoredRepeat):
                emit.ack(
                    out, cmd.sender_id, cmd.reply_to, origin, message=decision.message, into=frames
                )
                continue
            if isinstance(decision, BatchRepeat):
                first = created[decision.position]
                emit.ack(out, cmd.sender_id, cmd.reply_to, origin, message=first, into=frames)
                continue
            conversation = cmd.conversation_id
            seq = last_seq.get(conversation, state.last_seq[conversation]) + 1
            last_seq[conversation] = seq
            message = Message(
                id=self._new_id(),
                conversation_id=conversation,
                seq=seq,
                sender_id=cmd.sender_id,
                kind="text",
                body=cmd.body,
                client_msg_id=cmd.client_msg_id,
                created_at=self._now(),
                reply_to=cmd.reply_to_message_id,
            )
            created[position] = message
            users = members[conversation]
            # The message serialised once, carried into its frames, answer and fact.
            encoded = orjson.Fragment(message.to_wire())
            for user in users:
                user_seq = appends.next_seq(user)
                frame = wire.message_new(user_seq, encoded)
                appends.add(user, user_seq, frame, message.id)
                frames.add(user, frame, origin=origin)
            request_id = cmd.reply_to.request_id
            if request_id is not None:
                answer = wire.ack_with_message(request_id, encoded)
                emit.reply(out, cmd.sender_id, cmd.reply_to, origin, answer, into=frames)
            fact = wire.message_created(encoded, users)
            out.append(
                emit.fact(self._topics.chat_events, topics.MESSAGE_CREATED, conversation, fact)
            )
        out.extend(frames.records())
        if created:
            await storage.store_sends(
                conn, messages=list(created.values()), last_seq=last_seq, appends=appends
            )

    async def _guarded(
        self,
        user_id: str,
        reply_to: ReplyTo,
        origin: datetime,
        out: list[OutboundRecord],
        work: Awaitable[None],
    ) -> None:
        """Run a command; a refusal becomes an ``error`` frame to the requesting connection.

        Refusals are raised before the command writes anything it would have to undo (at
        most a direct conversation is created, which is harmless), so the transaction goes on.
        """
        try:
            await work
        except ChatError as exc:
            self._emit.refuse(out, user_id, reply_to, origin, exc)

    async def _receipt(
        self,
        conn: Connection,
        cmd: ReceiptCommand,
        origin: datetime,
        out: list[OutboundRecord],
    ) -> None:
        locked = await storage.lock_member(conn, cmd.conversation_id, cmd.user_id)
        if locked is None:
            raise Forbidden("not a member of this conversation")
        current, last_seq, members = locked
        change = apply_receipt(current, status=cmd.status, seq=cmd.seq, last_seq=last_seq)
        if change.announce is not None:
            status, up_to = change.announce
            await storage.store_watermarks(
                conn, cmd.conversation_id, cmd.user_id, change.watermarks
            )
            await self._emit.append_and_deliver(
                conn,
                audience(members, cmd.user_id, status),
                lambda _, seq: MessageStatus(
                    seq=seq,
                    conversation_id=cmd.conversation_id,
                    user_id=cmd.user_id,
                    status=status,
                    up_to_seq=up_to,
                ).to_wire(),
                origin,
                out,
            )
            fact = WatermarkMoved(
                conversation_id=cmd.conversation_id,
                user_id=cmd.user_id,
                status=status,
                up_to_seq=up_to,
            )
            out.append(
                self._emit.fact(
                    self._topics.chat_events,
                    topics.WATERMARK_MOVED,
                    cmd.conversation_id,
                    fact.to_wire(),
                )
            )
        self._emit.ack(out, cmd.user_id, cmd.reply_to, origin)
