"""Percentiles of latency samples (nearest-rank, in milliseconds)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(sorted_ms: Sequence[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0..100) of already sorted samples; 0 for no samples."""
    if not sorted_ms:
        return 0.0
    rank = max(math.ceil(q / 100 * len(sorted_ms)), 1)
    return sorted_ms[rank - 1]


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in ms (rounded to 0.01 ms) of latencies given in seconds."""
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(ms[-1], 2) if ms else 0.0,
    }


def late_episodes(
    samples: Sequence[tuple[float, float]], *, limit_s: float, window_s: float = 0.1
) -> list[dict[str, float]]:
    """Where a step's late messages lie in time: whether its p99 comes from latency spread
    over the step or from a few pauses (a slow WAL flush, say) that a busy machine drains
    slowly.

    ``samples`` are (send time, latency) pairs in seconds. Messages are grouped by the
    ``window_s`` window of their send time; consecutive windows holding a latency over
    ``limit_s`` make one episode. Each episode: its start (seconds after the first send), its
    length, how many of its messages were late, and the largest latency (ms).
    """
    if not samples:
        return []
    first = min(sent for sent, _ in samples)
    late_by_window: dict[int, list[float]] = {}
    for sent, latency in samples:
        if latency > limit_s:
            late_by_window.setdefault(int((sent - first) / window_s), []).append(latency)
    episodes: list[dict[str, float]] = []
    previous = -2
    for window in sorted(late_by_window):
        latencies = late_by_window[window]
        if window == previous + 1:
            episode = episodes[-1]
            episode["length_s"] = round(episode["length_s"] + window_s, 3)
            episode["late"] += len(latencies)
            episode["max_ms"] = max(episode["max_ms"], round(max(latencies) * 1000, 1))
        else:
            episodes.append(
                {
                    "start_s": round(window * window_s, 3),
                    "length_s": window_s,
                    "late": len(latencies),
                    "max_ms": round(max(latencies) * 1000, 1),
                }
            )
        previous = window
    return episodes
