"""Direct conversation ids: the gateway and the chat service must derive the same one."""

from __future__ import annotations

import hashlib
import itertools
import random
import re

from schemas.ids import DIRECT_PREFIX, direct_conversation_id, is_direct


def test_symmetric() -> None:
    assert direct_conversation_id("alice", "bob") == direct_conversation_id("bob", "alice")


def test_symmetric_on_random_pairs() -> None:
    rng = random.Random(1)
    for _ in range(200):
        a = "".join(rng.choice("abé漢0:") for _ in range(rng.randint(1, 12)))
        b = "".join(rng.choice("abé漢0:") for _ in range(rng.randint(1, 12)))
        assert direct_conversation_id(a, b) == direct_conversation_id(b, a)


def test_different_pairs_differ() -> None:
    users = ["u1", "u2", "u3", "alice", "bob", "Bob", "u1 ", "ü"]
    ids = {direct_conversation_id(a, b) for a, b in itertools.combinations(users, 2)}
    assert len(ids) == len(users) * (len(users) - 1) // 2


def test_no_concatenation_collision() -> None:
    assert direct_conversation_id("ab", "c") != direct_conversation_id("a", "bc")
    assert direct_conversation_id("1", "2:3") != direct_conversation_id("1:2", "3")
    assert direct_conversation_id("", "ab") != direct_conversation_id("a", "b")


def test_shape() -> None:
    conversation_id = direct_conversation_id("u1", "u2")
    assert conversation_id.startswith("dm_")
    assert DIRECT_PREFIX == "dm_"
    assert re.fullmatch(r"dm_[0-9a-f]{40}", conversation_id)
    assert is_direct(conversation_id)
    assert not is_direct("group-1")


def test_stable_value() -> None:
    # Pinned: changing the derivation orphans every stored direct conversation.
    assert direct_conversation_id("u1", "u2") == "dm_382779541b57daaea7fdb593f6117c9e93b997b0"
    assert direct_conversation_id("bob", "alice") == ("dm_26e25a3623375d43b4d5ed7a391d779b2dcb0c55")


def test_derivation_is_length_prefixed_sha256_of_sorted_pair() -> None:
    digest = hashlib.sha256(b"5:alicebob").hexdigest()
    assert direct_conversation_id("bob", "alice") == "dm_" + digest[:40]


def test_non_ascii_users_are_stable() -> None:
    assert direct_conversation_id("Zoë", "用户") == direct_conversation_id("用户", "Zoë")
    assert direct_conversation_id("Zoë", "用户") != direct_conversation_id("Zoe", "用户")
