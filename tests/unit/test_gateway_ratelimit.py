"""Per-connection token bucket: burst, refill at rate_per_s, LIMIT, then CLOSE on sustained abuse.

Times are a fake monotonic clock (floats in seconds) chosen so every refill is exact in binary.
"""

from __future__ import annotations

import pytest

from services.gateway.domain.ratelimit import RateLimiter, Verdict

ALLOW, LIMIT, CLOSE = Verdict.ALLOW, Verdict.LIMIT, Verdict.CLOSE


def _limiter(*, rate_per_s: float = 2.0, burst: float = 4.0, abuse_limit: int = 3) -> RateLimiter:
    return RateLimiter(rate_per_s=rate_per_s, burst=burst, abuse_limit=abuse_limit)


@pytest.mark.parametrize("burst", [1, 4, 20])
def test_burst_is_allowed_at_once_then_limited(burst: int) -> None:
    limiter = _limiter(burst=burst, abuse_limit=100)
    assert [limiter.check(10.0) for _ in range(burst)] == [ALLOW] * burst
    assert limiter.check(10.0) is LIMIT


def test_refill_at_rate_per_s() -> None:
    limiter = _limiter(rate_per_s=2.0, burst=4.0, abuse_limit=100)
    for _ in range(4):
        assert limiter.check(0.0) is ALLOW
    assert limiter.check(0.0) is LIMIT
    # 2 per second: one token every 0.5 s.
    assert limiter.check(0.25) is LIMIT
    assert limiter.check(0.5) is ALLOW
    assert limiter.check(0.5) is LIMIT
    # 1.5 s later: three tokens.
    assert [limiter.check(2.0) for _ in range(4)] == [ALLOW, ALLOW, ALLOW, LIMIT]


def test_refused_frames_do_not_waste_the_refill() -> None:
    # Refusals at 0.25 and 0.375 must not restart the half-second it takes to earn a token.
    limiter = _limiter(rate_per_s=2.0, burst=1.0, abuse_limit=100)
    assert limiter.check(0.0) is ALLOW
    assert limiter.check(0.25) is LIMIT
    assert limiter.check(0.375) is LIMIT
    assert limiter.check(0.5) is ALLOW


def test_steady_rate_at_the_limit_is_always_allowed() -> None:
    limiter = _limiter(rate_per_s=4.0, burst=1.0, abuse_limit=1)
    assert all(limiter.check(i * 0.25) is ALLOW for i in range(100))


def test_close_after_abuse_limit_refusals_in_a_row() -> None:
    limiter = _limiter(rate_per_s=1.0, burst=1.0, abuse_limit=3)
    assert limiter.check(0.0) is ALLOW
    assert [limiter.check(0.0) for _ in range(3)] == [LIMIT, LIMIT, CLOSE]


def test_abuse_limit_one_closes_on_the_first_refusal() -> None:
    limiter = _limiter(rate_per_s=1.0, burst=1.0, abuse_limit=1)
    assert limiter.check(0.0) is ALLOW
    assert limiter.check(0.0) is CLOSE


def test_an_allowed_frame_resets_the_refusal_streak() -> None:
    limiter = _limiter(rate_per_s=1.0, burst=1.0, abuse_limit=3)
    assert limiter.check(0.0) is ALLOW
    assert [limiter.check(0.0) for _ in range(2)] == [LIMIT, LIMIT]
    assert limiter.check(1.0) is ALLOW
    # A fresh streak: two more refusals are only LIMIT, the third closes.
    assert [limiter.check(1.0) for _ in range(3)] == [LIMIT, LIMIT, CLOSE]


def test_time_passing_without_an_allowed_frame_does_not_reset_the_streak() -> None:
    # Refusals spread over time (but never enough for a token) still count in a row.
    limiter = _limiter(rate_per_s=1.0, burst=1.0, abuse_limit=3)
    assert limiter.check(0.0) is ALLOW
    assert limiter.check(0.25) is LIMIT
    assert limiter.check(0.5) is LIMIT
    assert limiter.check(0.75) is CLOSE


def test_tokens_never_exceed_burst_after_a_long_idle() -> None:
    limiter = _limiter(rate_per_s=2.0, burst=4.0, abuse_limit=100)
    assert limiter.check(0.0) is ALLOW
    # An hour idle would be 7200 tokens uncapped; only burst are usable.
    assert [limiter.check(3600.0) for _ in range(5)] == [ALLOW] * 4 + [LIMIT]


def test_a_new_limiter_starts_full_whatever_the_first_timestamp() -> None:
    limiter = _limiter(rate_per_s=2.0, burst=3.0, abuse_limit=100)
    assert [limiter.check(1e9) for _ in range(4)] == [ALLOW, ALLOW, ALLOW, LIMIT]
