"""Typing indicators: which ``start`` is live and when it lapses, and which typist waits for
a membership presence has not learned yet. Pure: ``now`` is passed in.

A ``start`` lives ``ttl`` (6 s) unless refreshed by another ``start``; a lapsed one ends with
a ``stop`` sent on the typist's behalf, so a closed tab never leaves "is typing…" forever.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

#: (conversation id, user id)
TypingKey = tuple[str, str]


@dataclass(slots=True)
class TypingTracker:
    """Live typing starts and their deadlines (seconds on a monotonic clock)."""

    ttl_s: float
    _deadlines: dict[TypingKey, float] = field(default_factory=dict)

    def start(self, key: TypingKey, now: float) -> None:
        """A start or a refresh: the indicator lives ``ttl_s`` from now."""
        self._deadlines[key] = now + self.ttl_s

    def stop(self, key: TypingKey) -> bool:
        """An explicit stop; returns whether a start was live."""
        return self._deadlines.pop(key, None) is not None

    def lapse(self, now: float) -> list[TypingKey]:
        """Remove and return the starts whose deadline passed: each needs a stop sent."""
        lapsed = [key for key, deadline in self._deadlines.items() if deadline <= now]
        for key in lapsed:
            del self._deadlines[key]
        return lapsed

    def __len__(self) -> int:
        return len(self._deadlines)


CommandT = TypeVar("CommandT")


@dataclass(slots=True)
class MembershipWait(Generic[CommandT]):
    """Typing commands whose typist presence does not know as a member yet, held in order.

    Presence learns memberships from ``chat.conversations.v1``, a moment after chat acked the
    message that created the conversation; a client may start typing at once, and refusing it
    then would be wrong. Such a command waits up to ``wait_s`` for the membership before it is
    let through to be refused; later commands of the same (conversation, typist) wait behind
    it, so a ``stop`` never overtakes its ``start``. At most ``capacity`` commands wait: past
    that, commands go through at once (refused if still unknown), so a client typing in
    conversations it is not in cannot grow memory.
    """

    wait_s: float
    capacity: int
    _held: list[tuple[float, TypingKey, CommandT]] = field(default_factory=list)

    def conversations(self) -> set[str]:
        """Conversations of the held commands (their members must be read again)."""
        return {conversation_id for _, (conversation_id, _), _ in self._held}

    def sort(
        self,
        arriving: Sequence[tuple[TypingKey, CommandT]],
        members: Mapping[str, Collection[str]],
        now: float,
    ) -> list[tuple[TypingKey, CommandT]]:
        """The commands to apply now, held ones first, each in arrival order; hold the rest.

        Args:
            arriving: new commands, keyed by (conversation id, typist).
            members: current members of every conversation named by the held and arriving
                commands (absent: none known).
            now: monotonic seconds.
        """
        queue = [*self._held, *((now, key, command) for key, command in arriving)]
        self._held = []
        blocked: set[TypingKey] = set()
        ready: list[tuple[TypingKey, CommandT]] = []
        for since, key, command in queue:
            conversation_id, user_id = key
            unknown = user_id not in members.get(conversation_id, ())
            waits = key in blocked or (unknown and now - since < self.wait_s)
            if waits and len(self._held) < self.capacity:
                self._held.append((since, key, command))
                blocked.add(key)
            else:
                ready.append((key, command))
        return ready

    def __len__(self) -> int:
        return len(self._held)
