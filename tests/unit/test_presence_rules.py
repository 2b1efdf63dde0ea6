"""Presence folded from connection and status events, with a fake clock.

Pins the module's rules: several devices, a grace period before showing offline (no flapping on
a reload), expired gateways going offline at once, "appear offline", and announce exactly when
the shown status changes.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest

from schemas.frames import PresenceStatus
from services.presence.domain.presence import (
    DEFAULT_CHOICE,
    Transition,
    UserPresence,
    connection_closed,
    connection_opened,
    connectivity_flip,
    frame_fields,
    offline_due,
    status_set,
    visible_status,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(seconds=10)
STATUSES: tuple[PresenceStatus, ...] = get_args(PresenceStatus)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _online(*connections: str) -> UserPresence:
    state = UserPresence.unknown("u1")
    for connection in connections:
        state = connection_opened(state, connection).state
    return state


# --- the unknown user and visible_status ------------------------------------------------------


def test_unknown_user_is_offline_never_seen() -> None:
    state = UserPresence.unknown("u1")
    assert state == UserPresence(
        user_id="u1",
        chosen="online",
        shown="offline",
        connections=frozenset(),
        last_seen=None,
        offline_pending_since=None,
    )
    assert DEFAULT_CHOICE == "online"
    assert frame_fields(state, now=_at(5)) == ("offline", None)


@pytest.mark.parametrize("chosen", STATUSES)
def test_visible_status(chosen: PresenceStatus) -> None:
    assert visible_status(chosen, False) == "offline"
    assert visible_status(chosen, True) == chosen


# --- devices and the grace period -------------------------------------------------------------


def test_first_device_shows_online_and_announces() -> None:
    transition = connection_opened(UserPresence.unknown("u1"), "phone")
    assert transition.announce is True
    assert transition.state.shown == "online"
    assert transition.state.connections == {"phone"}


def test_two_devices_online_second_is_not_announced() -> None:
    first = connection_opened(UserPresence.unknown("u1"), "phone")
    second = connection_opened(first.state, "laptop")
    assert second.announce is False
    assert second.state.shown == "online"
    assert second.state.connections == {"phone", "laptop"}


def test_closing_one_of_two_devices_keeps_online_silently() -> None:
    transition = connection_closed(_online("phone", "laptop"), "phone", now=_at(1))
    assert transition.announce is False
    assert transition.state.shown == "online"
    assert transition.state.connections == {"laptop"}
    assert transition.state.offline_pending_since is None


def test_closing_both_starts_the_grace_period_without_announcing() -> None:
    state = connection_closed(_online("phone", "laptop"), "phone", now=_at(1)).state
    transition = connection_closed(state, "laptop", now=_at(2))
    assert transition.announce is False
    assert transition.state.shown == "online"
    assert transition.state.connections == frozenset()
    assert transition.state.offline_pending_since == _at(2)
    assert transition.state.last_seen is None


def _pending() -> UserPresence:
    """Online from one device, closed at t=2: grace runs until t=12."""
    return connection_closed(_online("phone"), "phone", now=_at(2)).state


@pytest.mark.parametrize("seconds", [2, 5, 11.999999])
def test_offline_due_before_grace_ends_does_nothing(seconds: float) -> None:
    state = _pending()
    assert offline_due(state, now=_at(seconds), grace=GRACE) == Transition(state, announce=False)


@pytest.mark.parametrize("seconds", [12, 13, 3600])
def test_offline_due_after_grace_goes_offline_with_last_seen_the_close_time(seconds: float) -> None:
    transition = offline_due(_pending(), now=_at(seconds), grace=GRACE)
    assert transition.announce is True
    assert transition.state.shown == "offline"
    assert transition.state.last_seen == _at(2)
    assert transition.state.offline_pending_since is None
    assert frame_fields(transition.state, now=_at(seconds + 100)) == ("offline", _at(2))


def test_offline_due_runs_once() -> None:
    first = offline_due(_pending(), now=_at(20), grace=GRACE)
    second = offline_due(first.state, now=_at(40), grace=GRACE)
    assert second == Transition(first.state, announce=False)


def test_offline_due_without_pending_does_nothing() -> None:
    for state in (UserPresence.unknown("u1"), _online("phone")):
        assert offline_due(state, now=_at(1000), grace=GRACE) == Transition(state, announce=False)


def test_reopen_within_grace_cancels_without_announcing() -> None:
    reopened = connection_opened(_pending(), "phone-2")
    assert reopened.announce is False
    assert reopened.state.shown == "online"
    assert reopened.state.offline_pending_since is None
    assert reopened.state.connections == {"phone-2"}
    # The grace period that would have ended at t=12 ends nothing now.
    later = offline_due(reopened.state, now=_at(100), grace=GRACE)
    assert later == Transition(reopened.state, announce=False)


def test_reload_loop_never_flaps() -> None:
    state = _online("c0")
    for i in range(1, 20):
        closed = connection_closed(state, f"c{i - 1}", now=_at(i))
        assert closed.announce is False
        assert offline_due(closed.state, now=_at(i + 0.5), grace=GRACE).announce is False
        opened = connection_opened(closed.state, f"c{i}")
        assert opened.announce is False
        state = opened.state
    assert state.shown == "online"


def test_grace_restarts_from_the_latest_last_close() -> None:
    state = connection_opened(_pending(), "phone-2").state  # closed at 2, back before 12
    state = connection_closed(state, "phone-2", now=_at(8)).state
    assert state.offline_pending_since == _at(8)
    assert offline_due(state, now=_at(12), grace=GRACE).announce is False
    due = offline_due(state, now=_at(18), grace=GRACE)
    assert due.announce is True
    assert due.state.last_seen == _at(8)


def test_reconnect_after_going_offline_announces_online() -> None:
    offline = offline_due(_pending(), now=_at(30), grace=GRACE).state
    transition = connection_opened(offline, "phone")
    assert transition.announce is True
    assert transition.state.shown == "online"
    # The stored last_seen stays; a visible user's frame carries the frame's time.
    assert transition.state.last_seen == _at(2)
    assert frame_fields(transition.state, now=_at(31)) == ("online", _at(31))


def test_closing_an_unknown_connection_is_a_no_op() -> None:
    for state in (UserPresence.unknown("u1"), _online("phone"), _pending()):
        assert connection_closed(state, "ghost", now=_at(50)) == Transition(state, announce=False)
        expired = connection_closed(state, "ghost", now=_at(50), expired_at=_at(40))
        assert expired == Transition(state, announce=False)


def test_closing_the_same_connection_twice_is_a_no_op() -> None:
    state = _pending()
    assert connection_closed(state, "phone", now=_at(9)) == Transition(state, announce=False)
    assert state.offline_pending_since == _at(2)


# --- expired gateways -------------------------------------------------------------------------


def test_expired_close_of_the_last_connection_is_offline_at_once() -> None:
    transition = connection_closed(_online("phone"), "phone", now=_at(60), expired_at=_at(30))
    assert transition.announce is True
    assert transition.state.shown == "offline"
    assert transition.state.last_seen == _at(30)
    assert transition.state.offline_pending_since is None
    assert transition.state.connections == frozenset()
    assert frame_fields(transition.state, now=_at(61)) == ("offline", _at(30))


def test_expired_close_while_another_connection_remains_stays_online() -> None:
    state = _online("phone", "laptop")
    transition = connection_closed(state, "phone", now=_at(60), expired_at=_at(30))
    assert transition.announce is False
    assert transition.state.shown == "online"
    assert transition.state.connections == {"laptop"}
    assert transition.state.last_seen is None
    assert transition.state.offline_pending_since is None


def test_expired_close_of_an_appearing_offline_user_announces_nothing() -> None:
    state = status_set(_online("phone"), "offline", now=_at(40)).state
    transition = connection_closed(state, "phone", now=_at(60), expired_at=_at(30))
    assert transition.announce is False
    assert transition.state.shown == "offline"
    assert transition.state.connections == frozenset()


# --- chosen status ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["away", "busy"])
def test_status_set_while_connected_is_shown_and_announced(status: PresenceStatus) -> None:
    transition = status_set(_online("phone", "laptop"), status, now=_at(40))
    assert transition.announce is True
    assert transition.state.chosen == status
    assert transition.state.shown == status
    assert frame_fields(transition.state, now=_at(3)) == (status, _at(3))


def test_status_set_to_the_current_status_is_not_announced() -> None:
    away = status_set(_online("phone"), "away", now=_at(40)).state
    assert status_set(away, "away", now=_at(40)) == Transition(away, announce=False)
    assert status_set(_online("phone"), "online", now=_at(40)).announce is False


def test_chosen_status_holds_on_every_device_and_across_reconnects() -> None:
    state = status_set(_online("phone"), "busy", now=_at(40)).state
    assert connection_opened(state, "laptop").state.shown == "busy"
    offline = offline_due(
        connection_closed(state, "phone", now=_at(1)).state, now=_at(20), grace=GRACE
    )
    assert offline.state.shown == "offline"
    back = connection_opened(offline.state, "tablet")
    assert back.announce is True
    assert back.state.shown == "busy"


def test_status_set_while_disconnected_changes_the_choice_only() -> None:
    offline = offline_due(_pending(), now=_at(30), grace=GRACE).state
    transition = status_set(offline, "away", now=_at(40))
    assert transition.announce is False
    assert transition.state.shown == "offline"
    assert transition.state.chosen == "away"
    assert connection_opened(transition.state, "phone").state.shown == "away"


def test_appear_offline_is_shown_offline_and_announced() -> None:
    transition = status_set(_online("phone", "laptop"), "offline", now=_at(40))
    assert transition.announce is True
    assert transition.state.shown == "offline"
    assert transition.state.chosen == "offline"
    assert transition.state.connections == {"phone", "laptop"}


def test_appearing_offline_devices_coming_and_going_never_announce() -> None:
    state = status_set(_online("phone", "laptop"), "offline", now=_at(40)).state
    steps: list[Callable[[UserPresence], Transition]] = [
        lambda s: connection_closed(s, "phone", now=_at(1)),
        lambda s: connection_opened(s, "tablet"),
        lambda s: connection_closed(s, "laptop", now=_at(2)),
        lambda s: connection_closed(s, "tablet", now=_at(3)),
        lambda s: offline_due(s, now=_at(100), grace=GRACE),
        lambda s: connection_opened(s, "phone"),
        lambda s: connection_closed(s, "phone", now=_at(200), expired_at=_at(150)),
        lambda s: offline_due(s, now=_at(300), grace=GRACE),
    ]
    for step in steps:
        transition = step(state)
        assert transition.announce is False
        assert transition.state.shown == "offline"
        state = transition.state
    # Closing while appearing offline starts no grace period: there is nothing to debounce.
    assert state.offline_pending_since is None


def test_coming_back_from_appear_offline_announces() -> None:
    hidden = status_set(_online("phone"), "offline", now=_at(40)).state
    transition = status_set(hidden, "online", now=_at(40))
    assert transition.announce is True
    assert transition.state.shown == "online"


# --- frame fields -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["online", "away", "busy"])
def test_frame_fields_of_a_visible_user_carry_now(status: PresenceStatus) -> None:
    offline = offline_due(_pending(), now=_at(30), grace=GRACE).state
    state = status_set(connection_opened(offline, "phone").state, status, now=_at(40)).state
    assert state.last_seen == _at(2)
    assert frame_fields(state, now=_at(77)) == (status, _at(77))


def test_frame_fields_during_grace_still_show_visible_at_now() -> None:
    assert frame_fields(_pending(), now=_at(5)) == ("online", _at(5))


def test_frame_fields_of_an_offline_user_carry_the_stored_last_seen() -> None:
    offline = offline_due(_pending(), now=_at(30), grace=GRACE).state
    assert frame_fields(offline, now=_at(31)) == ("offline", _at(2))
    assert frame_fields(offline, now=_at(9999)) == ("offline", _at(2))


# --- property: random event sequences ---------------------------------------------------------


def _random_step(
    rng: random.Random, state: UserPresence, now: datetime, next_id: int
) -> tuple[str, Transition]:
    """One random event applicable to ``state`` at ``now``.

    ``status_set`` is drawn only outside a grace period: it comes from a live connection, and
    the gateway's connection events for one user are ordered.
    """
    choices = ["open", "close", "close_unknown", "due"]
    if state.connections:
        choices += ["close", "expire"]
    if state.offline_pending_since is None:
        choices += ["status", "status"]
    kind = rng.choice(choices)
    if kind == "open":
        known = sorted(state.connections)
        connection = rng.choice(known) if known and rng.random() < 0.2 else f"c{next_id}"
        return kind, connection_opened(state, connection)
    if kind == "close" and state.connections:
        connection = rng.choice(sorted(state.connections))
        return kind, connection_closed(state, connection, now=now)
    if kind == "expire":
        connection = rng.choice(sorted(state.connections))
        expired_at = now - timedelta(seconds=rng.uniform(0, 30))
        return kind, connection_closed(state, connection, now=now, expired_at=expired_at)
    if kind == "status":
        return kind, status_set(state, rng.choice(STATUSES), now=_at(40))
    if kind == "due":
        return kind, offline_due(state, now=now, grace=GRACE)
    return "close_unknown", connection_closed(state, "ghost", now=now)


@pytest.mark.parametrize("seed", range(40))
def test_random_sequences_keep_the_rules(seed: int) -> None:
    rng = random.Random(seed)
    state = UserPresence.unknown(f"user-{seed}")
    now = T0
    shown_before_pending: PresenceStatus | None = None
    for step in range(300):
        now += timedelta(seconds=rng.choice([0, 0.5, 1, 3, 7, 15]))
        kind, transition = _random_step(rng, state, now, step)
        after = transition.state

        # Announce exactly when the shown status changed.
        assert transition.announce == (after.shown != state.shown), (seed, step, kind)

        if after.offline_pending_since is None:
            assert after.shown == visible_status(after.chosen, bool(after.connections)), (
                seed,
                step,
                kind,
            )
            shown_before_pending = None
        else:
            # Grace pending: nobody connected, the previous visible status still shown.
            assert not after.connections
            assert after.offline_pending_since <= now
            if shown_before_pending is None:
                assert state.offline_pending_since is None
                assert kind == "close"
                shown_before_pending = state.shown
            assert after.shown == shown_before_pending != "offline", (seed, step, kind)

        # Going offline sets last_seen to the close time or the expired gateway's last sign.
        if kind == "due" and transition.announce:
            assert state.offline_pending_since is not None
            assert after.last_seen == state.offline_pending_since
            assert now - state.offline_pending_since >= GRACE
        if kind == "expire" and not after.connections and state.shown != "offline":
            assert after.shown == "offline"
            assert after.last_seen is not None and after.last_seen <= now

        status, last_seen = frame_fields(after, now=now)
        assert status == after.shown
        assert last_seen == (after.last_seen if after.shown == "offline" else now)
        state = after


def test_status_set_during_the_grace_period_keeps_the_debounce() -> None:
    # The last device closed at 2 s; a status chosen before the grace ends must not show the
    # user offline early (and so flicker online -> offline -> online on a reconnect).
    pending = connection_closed(_online("phone"), "phone", now=_at(2)).state
    transition = status_set(pending, "away", now=_at(3))
    assert transition.state.shown == "away"
    assert transition.announce is True
    assert transition.state.offline_pending_since == _at(2)
    ended = offline_due(transition.state, now=_at(2) + GRACE, grace=GRACE)
    assert ended.announce is True
    assert frame_fields(ended.state, now=_at(30)) == ("offline", _at(2))


def test_appearing_offline_records_the_moment_as_last_seen() -> None:
    hidden = status_set(_online("phone"), "offline", now=_at(7)).state
    assert frame_fields(hidden, now=_at(9)) == ("offline", _at(7))


def test_connectivity_flips_only_on_the_first_and_the_last_connection() -> None:
    none: frozenset[str] = frozenset()
    assert connectivity_flip(none, frozenset({"c1"})) is True
    assert connectivity_flip(frozenset({"c1"}), frozenset({"c1", "c2"})) is None
    assert connectivity_flip(frozenset({"c1", "c2"}), frozenset({"c2"})) is None
    assert connectivity_flip(frozenset({"c2"}), none) is False
    assert connectivity_flip(none, none) is None
