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
