"""TypingTracker: a start lives ttl unless refreshed; stop and lapse each end it exactly once.
MembershipWait: a typist not yet known as a member waits, in order, within bounds."""

from __future__ import annotations

import random

import pytest

from services.presence.domain.typing_indicators import MembershipWait, TypingKey, TypingTracker

TTL = 6.0
A: TypingKey = ("conv-1", "alice")
B: TypingKey = ("conv-1", "bob")
C: TypingKey = ("conv-2", "alice")


def test_start_lapses_at_ttl_not_before() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=100.0)
    assert tracker.lapse(100.0) == []
    assert tracker.lapse(105.999) == []
    assert len(tracker) == 1
    assert tracker.lapse(106.0) == [A]
    assert len(tracker) == 0


def test_lapse_long_after_ttl_still_reports_the_start() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    assert tracker.lapse(1e6) == [A]


def test_refresh_extends_the_deadline() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    tracker.start(A, now=5.0)
    assert len(tracker) == 1
    assert tracker.lapse(6.0) == []
    assert tracker.lapse(10.999) == []
    assert tracker.lapse(11.0) == [A]


def test_refresh_keeps_typing_alive_indefinitely() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    for second in range(0, 60, 5):
        tracker.start(A, now=float(second))
        assert tracker.lapse(float(second)) == []
    assert tracker.lapse(60.0) == []
    assert tracker.lapse(61.0) == [A]


def test_stop_returns_true_once_then_false() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    assert tracker.stop(A) is True
    assert tracker.stop(A) is False
    assert len(tracker) == 0
    # A stopped start does not lapse later.
    assert tracker.lapse(100.0) == []


def test_stop_without_start_is_false() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    assert tracker.stop(A) is False


def test_stop_after_lapse_is_false() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    assert tracker.lapse(TTL) == [A]
    assert tracker.stop(A) is False


def test_stop_ends_only_its_own_key() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    for key in (A, B, C):
        tracker.start(key, now=0.0)
    assert tracker.stop(B) is True
    assert sorted(tracker.lapse(TTL)) == sorted([A, C])


def test_lapse_returns_each_key_once() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    tracker.start(B, now=1.0)
    tracker.start(C, now=3.0)
    assert tracker.lapse(7.0) == [A, B]
    assert tracker.lapse(7.0) == []
    assert tracker.lapse(8.999) == []
    assert tracker.lapse(9.0) == [C]
    assert tracker.lapse(100.0) == []
    assert len(tracker) == 0


def test_same_user_in_two_conversations_are_separate_keys() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    tracker.start(C, now=4.0)
    assert tracker.lapse(6.0) == [A]
    assert tracker.lapse(10.0) == [C]


def test_a_start_after_a_lapse_is_live_again() -> None:
    tracker = TypingTracker(ttl_s=TTL)
    tracker.start(A, now=0.0)
    assert tracker.lapse(6.0) == [A]
    tracker.start(A, now=7.0)
    assert tracker.lapse(12.0) == []
    assert tracker.lapse(13.0) == [A]


@pytest.mark.parametrize("seed", range(20))
def test_random_operations_end_every_start_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    tracker = TypingTracker(ttl_s=TTL)
    keys: list[TypingKey] = [(f"conv-{c}", f"user-{u}") for c in range(3) for u in range(3)]
    deadlines: dict[TypingKey, float] = {}
    now = 0.0
    for _ in range(300):
        now += rng.choice([0.0, 0.5, 1.0, 2.5, 7.0])
        action = rng.choice(["start", "start", "stop", "lapse"])
        key = rng.choice(keys)
        if action == "start":
            tracker.start(key, now)
            deadlines[key] = now + TTL
        elif action == "stop":
            assert tracker.stop(key) is (deadlines.pop(key, None) is not None)
        else:
            expected = sorted(k for k, deadline in deadlines.items() if deadline <= now)
            lapsed = tracker.lapse(now)
            assert sorted(lapsed) == expected
            assert len(set(lapsed)) == len(lapsed)
            for k in expected:
                del deadlines[k]
        assert len(tracker) == len(deadlines)


WAIT = 2.0


def wait() -> MembershipWait[str]:
    return MembershipWait(wait_s=WAIT, capacity=3)


def test_a_member_goes_through_at_once() -> None:
    held = wait()
    assert held.sort([(A, "start")], {"conv-1": {"alice"}}, now=0.0) == [(A, "start")]
    assert len(held) == 0


def test_an_unknown_typist_waits_for_the_membership_then_goes_through_in_order() -> None:
    held = wait()
    assert held.sort([(A, "start")], {}, now=0.0) == []
    assert held.conversations() == {"conv-1"}
    # A stop of the same typist waits behind its start, even once it could go.
    assert held.sort([(A, "stop"), (B, "start")], {"conv-1": {"bob"}}, now=0.5) == [(B, "start")]
    assert held.sort([], {"conv-1": {"alice", "bob"}}, now=1.0) == [(A, "start"), (A, "stop")]
    assert len(held) == 0


def test_a_typist_still_unknown_after_the_wait_goes_through_to_be_refused() -> None:
    held = wait()
    held.sort([(A, "start")], {}, now=0.0)
    assert held.sort([], {}, now=WAIT - 0.001) == []
    assert held.sort([(C, "start")], {}, now=WAIT) == [(A, "start")]
    assert held.sort([], {}, now=2 * WAIT) == [(C, "start")]


def test_past_capacity_commands_go_through_at_once() -> None:
    held = wait()
    assert held.sort([(A, "1"), (A, "2"), (A, "3"), (A, "4")], {}, now=0.0) == [(A, "4")]
    assert len(held) == 3
