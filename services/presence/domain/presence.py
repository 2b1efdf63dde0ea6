"""A user's presence folded from connection and status events. Pure: ``now`` is passed in.

Rules:
- Shown status: ``offline`` without a live connection or when the user chose to appear
  offline; otherwise the chosen status (online, away, busy). The choice holds on every device.
- Debounce: when the last connection closes the user is *not* shown offline at once; the
  grace period starts (``offline_pending_since``). A connection opened within it cancels the
  change, so a reload or a short network blip shows nothing. When it ends (``offline_due``)
  the user goes offline with ``last_seen`` = the moment the last connection closed.
- A connection expired because its gateway stopped heart-beating skips the grace period: the
  gateway has been silent longer than any blip already.
- ``last_seen`` is the last moment the user was visibly online: frames of a visible user
  carry the time of the frame; an offline user's carries when they went offline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from schemas.frames import PresenceStatus

#: What a user who never chose anything is shown as while connected.
DEFAULT_CHOICE: PresenceStatus = "online"


@dataclass(frozen=True, slots=True)
class UserPresence:
    """Everything presence knows about one user."""

    user_id: str
    # The status the user chose (offline = appear offline).
    chosen: PresenceStatus
    # The status others see now.
    shown: PresenceStatus
    # Live connections (ids).
    connections: frozenset[str]
    # Last moment visibly online; None when never seen.
    last_seen: datetime | None
    # Start of the grace period after the last connection closed; None when not pending.
    offline_pending_since: datetime | None

    @classmethod
    def unknown(cls, user_id: str) -> UserPresence:
        """A user presence has never heard of."""
        return cls(
            user_id=user_id,
            chosen=DEFAULT_CHOICE,
            shown="offline",
            connections=frozenset(),
            last_seen=None,
            offline_pending_since=None,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """New state, and whether the shown status changed (others must be told)."""

    state: UserPresence
    announce: bool


def visible_status(chosen: PresenceStatus, connected: bool) -> PresenceStatus:
    """What others see for a choice and a connectedness."""
    return chosen if connected and chosen != "offline" else "offline"


def _settle(before: UserPresence, after: UserPresence) -> Transition:
    return Transition(after, announce=after.shown != before.shown)


def connection_opened(state: UserPresence, connection_id: str) -> Transition:
    """A device connected: cancels a pending offline, shows the chosen status."""
    connections = state.connections | {connection_id}
    after = replace(
        state,
        connections=connections,
        offline_pending_since=None,
        shown=visible_status(state.chosen, True),
    )
    return _settle(state, after)


def connection_closed(
    state: UserPresence, connection_id: str, *, now: datetime, expired_at: datetime | None = None
) -> Transition:
    """A device disconnected, or its gateway was declared dead (``expired_at`` given).

    Args:
        state: current presence.
        connection_id: the closed connection (unknown ids are ignored: a repeat).
        now: when the close was processed.
        expired_at: for an expired gateway, when it was last heard from: the user goes offline
            at once with that as ``last_seen``.
    """
    if connection_id not in state.connections:
        return Transition(state, announce=False)
    connections = state.connections - {connection_id}
    if connections:
        return _settle(state, replace(state, connections=connections))
    if state.shown == "offline":
        # Appearing offline: nothing to debounce, nobody to tell.
        return _settle(state, replace(state, connections=connections, offline_pending_since=None))
    if expired_at is not None:
        after = replace(
            state,
            connections=connections,
            shown="offline",
            last_seen=expired_at,
            offline_pending_since=None,
        )
        return _settle(state, after)
    return _settle(state, replace(state, connections=connections, offline_pending_since=now))


def offline_due(state: UserPresence, *, now: datetime, grace: timedelta) -> Transition:
    """End the grace period if it has run out and nobody came back."""
    pending = state.offline_pending_since
    if pending is None or state.connections or now - pending < grace:
        return Transition(state, announce=False)
    after = replace(state, shown="offline", last_seen=pending, offline_pending_since=None)
    return _settle(state, after)


def status_set(state: UserPresence, status: PresenceStatus, *, now: datetime) -> Transition:
    """The user chose a status on one device; it holds on all of them.

    During a grace period the user still counts as connected (the debounce holds whatever
    arrives meanwhile). Choosing to appear offline records ``last_seen`` as that moment: it
    is the last time others saw the user.
    """
    connected = bool(state.connections) or state.offline_pending_since is not None
    shown = visible_status(status, connected)
    last_seen = now if shown == "offline" and state.shown != "offline" else state.last_seen
    after = replace(state, chosen=status, shown=shown, last_seen=last_seen)
    return _settle(state, after)


def connectivity_flip(before: frozenset[str], after: frozenset[str]) -> bool | None:
    """Whether the user now has a live connection, when that changed (else None).

    This is the raw fact, not the shown status: no grace period and no appearing offline. The
    notifier pushes to users without a live connection, and a user who appears offline, or
    reloads a page, is still there to see a notification arrive.
    """
    if bool(before) == bool(after):
        return None
    return bool(after)


def frame_fields(state: UserPresence, *, now: datetime) -> tuple[PresenceStatus, datetime | None]:
    """(status, last_seen) of the ``presence`` frame describing ``state`` at ``now``."""
    if state.shown == "offline":
        return "offline", state.last_seen
    return state.shown, now
