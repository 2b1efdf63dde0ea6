"""The chat service's part of a user's erasure (docs/erasure.md), applied in one transaction by
its own consumer of ``users.erasure.v1`` (:mod:`services.runtime.erasure`), beside the command
consumer and out of its hot path.

    footprint: the user's conversations (member of, wrote in, or in their stream) and contacts
    lock those conversations (id order; their sends and changes wait)
    erase the user's messages (deleted placeholders; search follows), take back their
        reactions, take them out of every conversation (a group as when leaving)
    rewrite in place every stored frame that carried their messages or names them, in every
        stream (same users, same seqs); delete their own stream
    tell the others: message.updated for every changed message and conversation.updated for
        every conversation they left, appended to the members' streams and delivered live
    facts: chat.conversation.updated (their new member lists, superseding on the compacted
        topic every fact that named the user) and chat.messages.erased (for the notifier:
        previews of those messages, and the user's own notifications)

Applied again it finds nothing left and changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import orjson

from schemas import topics
from schemas.events import MAX_ERASED_PER_FACT, ConversationChanged, MessagesErased
from schemas.frames import ConversationUpdated, Message, MessageUpdated
from services.chat import erasure_storage, storage
from services.chat.conversations import conversation_for
from services.chat.domain.erasure import erased_message, leave, scrub_frame, without_reactions_of
from services.chat.domain.groups import ConversationState, GroupChange
from services.chat.emit import Emitter
from services.runtime.db import Connection
from services.runtime.erasure import Erased, ErasureRequest
from services.runtime.kafka import TopicNames
from services.runtime.outbox import OutboundRecord, Outbox
from services.runtime.streams import Appends


class ChatEraser:
    """The chat service's :class:`~services.runtime.erasure.Eraser`.

    Args:
        emit: stages frames and facts.
        topic_names: topics of this deployment.
        outbox: where superseded facts and the user's pending deliveries are withdrawn from.
    """

    def __init__(self, *, emit: Emitter, topic_names: TopicNames, outbox: Outbox) -> None:
        self._emit = emit
        self._topics = topic_names
        self._outbox = outbox

    async def erase(
        self, conn: Connection, request: ErasureRequest, out: list[OutboundRecord]
    ) -> Erased:
        """Erase the user from chat (see the module docstring)."""
        user = request.user_id
        found = await erasure_storage.footprint(conn, user)
        states: dict[str, tuple[ConversationState, int]] = {}
        for conversation_id in found.conversation_ids:
            locked = await storage.lock_conversation(conn, conversation_id)
            if locked is not None:
                states[conversation_id] = locked
        locked_ids = list(states)
        erased = [
            erased_message(m) for m in await erasure_storage.lock_messages(conn, user, locked_ids)
        ]
        await erasure_storage.store_erased(conn, erased)
        reacted = [
            changed
            for message in await erasure_storage.lock_reacted(conn, user, locked_ids)
            if (changed := without_reactions_of(message, user)) is not None
        ]
        await erasure_storage.store_reactions(conn, reacted)
        left: dict[str, GroupChange] = {}
        for conversation_id, (state, last_seq) in states.items():
            change = leave(state, user)
            if change.changed:
                await storage.store_conversation(conn, change.state, last_seq=last_seq)
                left[conversation_id] = change
        wire = {m.id: m.to_dict() for m in erased}
        rewritten = await storage.STREAM.rewrite_where(
            conn,
            functools.partial(scrub_frame, user_id=user, erased=wire),
            subjects=list(wire),
            mentioning=orjson.dumps(user).decode(),
            of_users=found.contacts,
            mentioning_subjects=[m.id for m in reacted],
            except_user=user,
        )
        deleted = await storage.STREAM.delete(conn, user)
        members = {
            cid: (left[cid].state if cid in left else state).member_ids
            for cid, (state, _) in states.items()
        }
        added = await self._announce(conn, [*erased, *reacted], left, states, members, out)
        # Frames not yet published to the user are no longer theirs to receive; facts of the
        # conversations they left are superseded by the ones staged now.
        await self._outbox.withdraw(conn, topic=self._topics.delivery, key=user)
        for conversation_id in left:
            await self._outbox.withdraw(
                conn, topic=self._topics.chat_conversations, key=conversation_id
            )
        parts = self._facts(request, erased, left, members, out)
        return Erased(
            changes={
                "messages": len(erased),
                "reactions": len(reacted),
                "memberships": len(left),
                "frames_rewritten": rewritten,
                "frames_added": added,
                "frames_deleted": deleted,
            },
            follow_ups={"notifier": parts},
        )

    async def _announce(
        self,
        conn: Connection,
        changed: Sequence[Message],
        left: dict[str, GroupChange],
        states: dict[str, tuple[ConversationState, int]],
        members: dict[str, list[str]],
        out: list[OutboundRecord],
    ) -> int:
        """Append and deliver a ``message.updated`` for every changed message and a
        ``conversation.updated`` for every conversation the user left, to its members now.

        Returns:
            How many frames were appended.
        """
        audience = {
            user
            for cid in {m.conversation_id for m in changed} | set(left)
            for user in members.get(cid, ())
        }
        if not audience:
            return 0
        appends = Appends(await erasure_storage.lock_streams(conn, sorted(audience)))
        added: list[tuple[str, bytes]] = []
        for message in sorted(changed, key=lambda m: (m.conversation_id, m.seq)):
            for user in members.get(message.conversation_id, ()):
                seq = appends.next_seq(user)
                frame = MessageUpdated(seq=seq, message=message).to_wire()
                appends.add(user, seq, frame, message.id)
                added.append((user, frame))
        for conversation_id, change in sorted(left.items()):
            _, last_seq = states[conversation_id]
            recipients = change.state.member_ids
            if not recipients:
                continue
            last, unread = await storage.conversation_view(
                conn, conversation_id, last_seq=last_seq, user_ids=recipients
            )
            for user in recipients:
                seq = appends.next_seq(user)
                view = conversation_for(
                    change.state, last_message=last, unread_count=unread.get(user, 0)
                )
                frame = ConversationUpdated(seq=seq, conversation=view).to_wire()
                appends.add(user, seq, frame, None if last is None else last.id)
                added.append((user, frame))
        if added:
            await erasure_storage.append(conn, appends)
        out.extend(self._emit.delivery.frame(user, frame) for user, frame in added)
        return len(added)

    def _facts(
        self,
        request: ErasureRequest,
        erased: Sequence[Message],
        left: dict[str, GroupChange],
        members: dict[str, list[str]],
        out: list[OutboundRecord],
    ) -> int:
        """Stage the facts for other services.

        ``chat.conversation.updated`` (version + 1, without the user) for every conversation
        they left: on the compacted chat.conversations.v1 it becomes the key's last word, so
        the older facts that named the user are compacted away. ``chat.messages.erased`` for
        every conversation they left or had messages in, in parts of at most
        :data:`MAX_ERASED_PER_FACT` ids.

        Returns:
            How many ``chat.messages.erased`` facts were staged (the notifier's follow-ups).
        """
        for conversation_id, change in sorted(left.items()):
            state = change.state
            # removed_ids stays empty: a fact that outlives the erasure must not name the user.
            fact = ConversationChanged(
                conversation_id=conversation_id,
                kind=state.kind,
                title=state.title,
                version=state.version,
                member_ids=state.member_ids,
                admin_ids=state.admin_ids,
            ).to_wire()
            for topic in (self._topics.chat_conversations, self._topics.chat_events):
                out.append(
                    self._emit.fact(topic, topics.CONVERSATION_UPDATED, conversation_id, fact)
                )
        by_conversation: dict[str, list[str]] = {cid: [] for cid in left}
        for message in erased:
            by_conversation.setdefault(message.conversation_id, []).append(message.id)
        parts = 0
        for conversation_id, ids in sorted(by_conversation.items()):
            chunks = [
                ids[start : start + MAX_ERASED_PER_FACT]
                for start in range(0, len(ids), MAX_ERASED_PER_FACT)
            ] or [[]]
            for part, chunk in enumerate(chunks):
                fact = MessagesErased(
                    conversation_id=conversation_id,
                    user_id=request.user_id,
                    message_ids=chunk,
                    member_ids=members.get(conversation_id, []),
                    request=request.ref,
                    part=part,
                ).to_wire()
                out.append(
                    self._emit.fact(
                        self._topics.chat_events, topics.MESSAGES_ERASED, conversation_id, fact
                    )
                )
                parts += 1
        return parts
