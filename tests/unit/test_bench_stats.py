"""The bench's grouping of late messages into episodes (pure; no services)."""

from __future__ import annotations

from bench.stats import late_episodes


def test_no_late_message_makes_no_episode() -> None:
    samples = [(100.0 + i * 0.01, 0.02) for i in range(500)]
    assert late_episodes(samples, limit_s=0.1) == []


def test_adjacent_windows_make_one_episode_and_a_gap_starts_another() -> None:
    samples = [(10.0 + i * 0.01, 0.02) for i in range(300)]
    # Late sends at 0.52 s and 0.68 s (windows 5 and 6: one episode), then at 2.05 s.
    samples += [(10.52, 0.15), (10.68, 0.30), (10.69, 0.12), (12.05, 0.11)]
    assert late_episodes(samples, limit_s=0.1) == [
        {"start_s": 0.5, "length_s": 0.2, "late": 3, "max_ms": 300.0},
        {"start_s": 2.0, "length_s": 0.1, "late": 1, "max_ms": 110.0},
    ]


def test_latency_at_the_limit_is_not_late() -> None:
    assert late_episodes([(0.0, 0.1), (0.05, 0.1)], limit_s=0.1) == []
