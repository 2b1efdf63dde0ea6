"""Which records of a batch are applied once their event keys were claimed (pure)."""

from __future__ import annotations

from services.runtime.inbound import first_of_each


def test_new_keys_apply_once_and_repeats_are_left_out() -> None:
    a, b, c = ("/jobs", "1"), ("/jobs", "2"), ("/jobs", "3")
    # b was claimed by an earlier batch: it is not among the keys this claim returned.
    assert first_of_each([a, b, a, c, None, c], {a, c}) == [True, False, False, True, True, False]


def test_same_id_from_another_source_is_another_event() -> None:
    assert first_of_each([("/jobs", "7"), ("/apps", "7")], {("/jobs", "7"), ("/apps", "7")}) == [
        True,
        True,
    ]


def test_records_without_a_key_are_always_applied() -> None:
    # Not of a deduplicated topic, or not decodable (the dead-letter queue takes those).
    assert first_of_each([None, None], set()) == [True, True]


def test_nothing_claimed_nothing_applied() -> None:
    assert first_of_each([("/s", "1"), ("/s", "1")], set()) == [False, False]
