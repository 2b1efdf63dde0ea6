"""Load shedding: whether this gateway hands another command on, or tells the client to come
back later (the admission of commands; that of connections is ``services/gateway/admission``).

Past capacity, a queue somewhere grows (Kafka's command topic behind a busy chat consumer, the
producer's buffer, Postgres): every command accepted then waits longer than the one before,
and latency grows without bound while nothing is refused. The gateway sees that queue from its
edge: the requests it handed on whose answer (``ack`` or ``error``, pushed back through the
delivery topic) has not come yet. When the oldest of them has waited longer than ``max_wait_s``
and more than ``min_pending`` wait, the system is behind, and new commands are answered
``unavailable`` with a ``retry_after_ms`` hint instead of joining the queue: what is accepted is
served within a bounded time, and the queue drains (recovery) as soon as offered load falls.

Refusal is gradual: a command is refused with a probability that grows from 0 when the oldest
wait reaches ``max_wait_s`` to 1 at twice that. An all-or-nothing gate makes every connection
stop and start together (the queue empties, all are let in at once, it overflows again); a
share of refusals that follows the excess keeps the accepted rate near what the system serves.

A refused command was never handed on, so nothing acked is lost; the client resends it (same
``client_msg_id``) after the hint. ``min_pending`` keeps a few answers that never come (a
record dead-lettered, a connection gone) from looking like overload; entries older than
``forget_after_s`` are dropped, and a closed connection's entries go with it.

Pure: time is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: The bounds of the ``retry_after_ms`` hint.
MIN_RETRY_MS = 100
MAX_RETRY_MS = 10_000


class LoadShedder:
    """Requests handed on and not yet answered, oldest first.

    Args:
        max_wait_s: the oldest pending request may wait this long before new ones are refused
            (some at first, all at twice this wait).
        min_pending: fewer pending requests than this never count as overload.
        forget_after_s: a request unanswered this long is forgotten (its answer was lost).
        chance: a uniform random number in [0, 1) (injected; tests fix it).
    """

    __slots__ = ("_chance", "_forget_after_s", "_max_wait_s", "_min_pending", "_pending")

    def __init__(
        self,
        *,
        max_wait_s: float,
        min_pending: int,
        forget_after_s: float,
        chance: Callable[[], float],
    ) -> None:
        self._chance = chance
        self._max_wait_s = max_wait_s
        self._min_pending = min_pending
        self._forget_after_s = forget_after_s
        # (connection id, request id) -> when it was handed on; dicts keep insertion order, so
        # the first entry is the oldest.
        self._pending: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def handed_on(self, connection_id: str, request_id: str, now: float) -> None:
        """A request was handed on; its answer is awaited."""
        self._pending[(connection_id, request_id)] = now

    def answered(self, connection_id: str, request_id: str) -> None:
        """Its answer arrived (unknown ids, e.g. answers to other gateways' requests, are
        ignored)."""
        self._pending.pop((connection_id, request_id), None)

    def forget(self, connection_id: str, request_ids: Iterable[str]) -> None:
        """A connection closed: its requests' answers will find nobody to wait for them."""
        for request_id in request_ids:
            self._pending.pop((connection_id, request_id), None)

    def oldest_wait_s(self, now: float) -> float:
        """How long the oldest pending request has waited (0 when none)."""
        pending = self._pending
        while pending:
            key = next(iter(pending))
            waited = now - pending[key]
            if waited < self._forget_after_s:
                return waited
            del pending[key]
        return 0.0

    def retry_after_ms(self, now: float) -> int | None:
        """None when a new request may be handed on; else the suggested wait before a retry:
        about how long requests now wait, within bounds."""
        if len(self._pending) < self._min_pending:
            return None
        waited = self.oldest_wait_s(now)
        excess = (waited - self._max_wait_s) / self._max_wait_s
        if excess <= 0 or self._chance() >= excess:
            return None
        return max(MIN_RETRY_MS, min(MAX_RETRY_MS, round(waited * 1000)))
