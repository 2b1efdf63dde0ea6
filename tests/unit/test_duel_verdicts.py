"""The duel's verdicts over several rounds (pure; no services)."""

from __future__ import annotations

from typing import Any

from bench.duel import verdicts


def _round(seed: int, ours: int) -> dict[str, Any]:
    return {
        "highest_rate_p99_under_limit": {"seed": seed, "ours": ours},
        "ratios": {"highest_rate": round(ours / seed, 2)},
    }


def test_each_round_s_verdict_and_the_median_ratio() -> None:
    summary = verdicts([_round(4000, 1000), _round(2000, 2000), _round(3000, 3000)])
    assert summary["highest_rate"] == [
        {"seed": 4000, "ours": 1000},
        {"seed": 2000, "ours": 2000},
        {"seed": 3000, "ours": 3000},
    ]
    assert summary["ratio"] == [0.25, 1.0, 1.0]
    assert summary["median_ratio"] == 1.0


def test_no_median_when_a_round_has_no_ratio() -> None:
    ours_only = {"highest_rate_p99_under_limit": {"ours": 2000}}
    summary = verdicts([_round(2000, 1000), ours_only])
    assert summary["ratio"] == [0.5, None]
    assert summary["median_ratio"] is None
