"""Typing indicators: which ``start`` is live and when it lapses. Pure: ``now`` is passed in.

A ``start`` lives ``ttl`` (6 s) unless refreshed by another ``start``; a lapsed one ends with
a ``stop`` sent on the typist's behalf, so a closed tab never leaves "is typing…" forever.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
