"""The duel's message bodies: the issue's fixed 40 bytes, or short prose (pure; no services)."""

from __future__ import annotations

import pytest

from bench.duel import BODY, body_pool


def test_fixed_bodies_are_the_issue_s_40_bytes() -> None:
    assert body_pool("fixed") == (BODY,)
    assert len(BODY.encode()) == 40


def test_text_bodies_are_distinct_prose_within_40_bytes() -> None:
    pool = body_pool("text")
    assert all(0 < len(body.encode()) <= 40 for body in pool)
    assert len(set(pool)) > len(pool) * 0.9
    words = {word.strip(".?!").lower() for body in pool for word in body.split()}
    assert len(words) > 300
    assert body_pool("text") == pool


def test_unknown_bodies_are_refused() -> None:
    with pytest.raises(ValueError, match="fixed or text"):
        body_pool("lorem")
