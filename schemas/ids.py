"""Identifiers both the gateway and the chat service must compute identically."""

from __future__ import annotations

import functools
import hashlib

DIRECT_PREFIX = "dm_"
#: Who an erased user's messages are from, and what stands in for them wherever others still see
#: a trace of them (docs/erasure.md). Not a user id a site issues: the gateway refuses a token
#: whose ``sub`` is this, so nobody can speak as the placeholder.
ERASED_USER_ID = "~erased"


@functools.lru_cache(maxsize=65536)
def direct_conversation_id(user_a: str, user_b: str) -> str:
    """The id of the direct conversation between two users, the same whoever asks first.

    Hashing keeps ids short and opaque whatever the user ids contain; the length prefix makes
    the encoding unambiguous, so ``("ab", "c")`` and ``("a", "bc")`` never collide.

    Args:
        user_a: one participant.
        user_b: the other participant.

    Returns:
        ``dm_`` followed by 40 hex characters.

    Memoised: the gateway computes it for every direct message, mostly for the same pairs.
    """
    low, high = sorted((user_a, user_b))
    digest = hashlib.sha256(f"{len(low)}:{low}{high}".encode()).hexdigest()
    return f"{DIRECT_PREFIX}{digest[:40]}"


def is_direct(conversation_id: str) -> bool:
    """Whether the id names a direct (two-person) conversation."""
    return conversation_id.startswith(DIRECT_PREFIX)
