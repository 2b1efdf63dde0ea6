"""Effects that wait for the consumer's transaction to commit, such as counting what it did.

A consumed batch is applied in a transaction that may roll back and run again (a lost
connection, a deadlock, a stream another transaction created meanwhile), and on the careful path
a record that fails leaves nothing behind. A metric counted while the batch is applied would
count a retried batch twice and a dead-lettered record once; a handler hands the count to
:func:`after_commit` instead, and the consumer runs it once the transaction committed.

The effects of the transaction being applied live in a context variable: the consumer's lanes
are tasks of their own, each with its own transaction and its own effects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from services.runtime.metrics import ERRORS

log = logging.getLogger(__name__)

Effect = Callable[[], object]

_PENDING: ContextVar[list[Effect] | None] = ContextVar("commit_effects", default=None)


def after_commit(effect: Effect) -> None:
    """Run ``effect`` once the transaction being applied in this task commits, not at all if
    it rolls back; at once when none is being applied (a handler called outside a consumer)."""
    pending = _PENDING.get()
    if pending is None:
        effect()
    else:
        pending.append(effect)


class Pending:
    """The effects of one transaction, gathered while it is applied (:func:`gathering`)."""

    __slots__ = ("_effects",)

    def __init__(self, effects: list[Effect]) -> None:
        self._effects = effects

    def mark(self) -> int:
        """Where the effects of what is applied next begin (a record on the careful path)."""
        return len(self._effects)

    def drop_since(self, mark: int) -> None:
        """Forget the effects gathered since ``mark``: what made them was rolled back."""
        del self._effects[mark:]

    def run(self) -> None:
        """Run every effect, in order, once the transaction committed; an effect that fails
        is logged and counted, and the others still run."""
        effects, self._effects[:] = list(self._effects), []
        for effect in effects:
            try:
                effect()
            except Exception:
                ERRORS.labels("commit_effect").inc()
                log.exception("an effect after commit failed")


@contextmanager
def gathering() -> Iterator[Pending]:
    """Gather the effects :func:`after_commit` is given in this task (and tasks it starts)
    until the block ends; the caller runs them once its transaction committed."""
    effects: list[Effect] = []
    token = _PENDING.set(effects)
    try:
        yield Pending(effects)
    finally:
        _PENDING.reset(token)
