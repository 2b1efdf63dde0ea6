"""Per-connection rate limiting: a token bucket, plus a verdict on sustained abuse."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    """What to do with a frame."""

    ALLOW = "allow"
    #: Answer ``rate_limited`` and keep the connection.
    LIMIT = "limit"
    #: The client ignores the limit: close with 4008.
    CLOSE = "close"


@dataclass(slots=True)
class RateLimiter:
    """Token bucket of ``rate_per_s`` refilling up to ``burst``; ``abuse_limit`` refusals in a
    row (without a frame allowed in between) mean the client is not backing off at all.

    Times are seconds from any monotonic clock, passed in.
    """

    rate_per_s: float
    burst: float
    abuse_limit: int
    _tokens: float = field(init=False)
    _updated: float | None = field(init=False, default=None)
    _refused_in_row: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._tokens = self.burst

    def check(self, now: float) -> Verdict:
        """Spend a token for a frame arriving at ``now``."""
        if self._updated is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            self._refused_in_row = 0
            return Verdict.ALLOW
        self._refused_in_row += 1
        return Verdict.CLOSE if self._refused_in_row >= self.abuse_limit else Verdict.LIMIT
