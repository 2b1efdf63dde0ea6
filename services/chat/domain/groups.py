"""Decisions about conversations as wholes: creating a group, its members, roles and title.

Every function takes the conversation's current state (``None`` when it does not exist) and the
acting user, and returns a :class:`GroupChange`: the state after, who was added and removed,
and whether anything changed at all (a repeat — adding a member twice, renaming to the same
title — changes nothing and announces nothing, which makes resent commands harmless). Refusals
are raised as :mod:`services.chat.domain.errors`. Pure: the clock's reading is passed in.

Rules (protocol part 2, "Conversations and groups"):
- Only members may act; a conversation that does not exist looks like one the actor is not a
  member of (``forbidden``), so answers never reveal which conversations exist.
- Direct conversations cannot be changed (``forbidden``).
- Admins add, remove, set roles and rename; any member may remove themself (leave).
- A group always keeps an admin: when the last admin leaves, the longest-standing member (the
  earliest to join, ties broken by user id) becomes one; an admin may not demote themself when
  no other admin remains (``conflict``: appoint another first).
- At most :data:`~schemas.frames.MAX_GROUP_MEMBERS` members (``too_large`` beyond).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from schemas.frames import MAX_GROUP_MEMBERS, ConversationKind, Role
from services.chat.domain.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge


@dataclass(frozen=True, slots=True)
class Membership:
    """One member of a conversation."""

    user_id: str
    role: Role
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class ConversationState:
    """A conversation as the decisions need it.

    Attributes:
        members: longest-standing first (joined_at, then user id).
        version: changes so far, 1 for a new group (0 for a direct conversation, never changed).
    """

    id: str
    kind: ConversationKind
    title: str | None
    members: tuple[Membership, ...]
    version: int
    created_at: datetime

    def member(self, user_id: str) -> Membership | None:
        """The membership of ``user_id``, or None."""
        return next((m for m in self.members if m.user_id == user_id), None)

    @property
    def member_ids(self) -> list[str]:
        """Every member's id, sorted."""
        return sorted(m.user_id for m in self.members)

    @property
    def admin_ids(self) -> list[str]:
        """The admins' ids, sorted."""
        return sorted(m.user_id for m in self.members if m.role == "admin")


@dataclass(frozen=True, slots=True)
class GroupChange:
    """The outcome of a decision.

    Attributes:
        state: the conversation after the change (the same object when nothing changed).
        changed: whether anything is to be stored and announced.
        added: members who joined with this change.
        removed: members who left with this change.
    """

    state: ConversationState
    changed: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def audience(self) -> list[str]:
        """Who is told (``conversation.updated``): every member after the change and every
        member it removed, in id order."""
        return sorted({*self.state.member_ids, *self.removed})


def longest_standing(members: Iterable[Membership]) -> list[Membership]:
    """``members`` ordered by seniority: earliest to join first, ties broken by user id."""
    return sorted(members, key=lambda m: (m.joined_at, m.user_id))


def _keep_an_admin(members: list[Membership]) -> tuple[Membership, ...]:
    """``members`` in seniority order, the longest-standing promoted when no admin is left."""
    ordered = longest_standing(members)
    if ordered and not any(m.role == "admin" for m in ordered):
        ordered[0] = replace(ordered[0], role="admin")
    return tuple(ordered)


def _clean_title(title: str) -> str:
    cleaned = title.strip()
    if not cleaned:
        raise BadRequest("title: blank")
    return cleaned


def _changed(
    state: ConversationState,
    *,
    members: tuple[Membership, ...] | None = None,
    title: str | None = None,
) -> ConversationState:
    """The next version of ``state`` with the given fields replaced."""
    return replace(
        state,
        version=state.version + 1,
        members=state.members if members is None else members,
        title=state.title if title is None else title,
    )


def _acting_member(state: ConversationState | None, actor: str) -> ConversationState:
    """The state, once the actor is known to be a member of a group.

    Raises:
        Forbidden: no such conversation, the actor is not a member, or it is direct.
    """
    if state is None or state.member(actor) is None:
        raise Forbidden("not a member of this conversation")
    if state.kind != "group":
        raise Forbidden("a direct conversation cannot be changed")
    return state


def _require_admin(state: ConversationState, actor: str) -> None:
    member = state.member(actor)
    if member is None or member.role != "admin":
        raise Forbidden("only an admin may change this group")


def create_group(
    *,
    conversation_id: str,
    existing: ConversationState | None,
    creator: str,
    title: str,
    member_ids: Iterable[str],
    now: datetime,
    resend_safe: bool = False,
) -> GroupChange:
    """A new group: the creator is its admin, the others members, all joined ``now``.

    With ``resend_safe`` (the client named the group: its id is derived from the creator and
    that name), an existing group of this id is the creator's own, created by an earlier try of
    the same request: unchanged, whatever this try's title and members (the first wins).

    Raises:
        Conflict: a conversation with this id exists already and the id was random (ids are
            minted by gateways, so this means a bug or a forged command).
        Forbidden: a resend for a group the creator has left since.
        BadRequest: a blank title, or nobody but the creator.
        TooLarge: more than the members allowed (the schema already bounds the list).
    """
    if existing is not None:
        if not resend_safe or existing.kind != "group":
            raise Conflict("conversation id already in use")
        if existing.member(creator) is None:
            raise Forbidden("not a member of this group any more")
        return GroupChange(state=existing, changed=False)
    others = sorted(set(member_ids) - {creator})
    if not others:
        raise BadRequest("members: a group needs someone besides its creator")
    if len(others) + 1 > MAX_GROUP_MEMBERS:
        raise TooLarge(f"a group has at most {MAX_GROUP_MEMBERS} members")
    members = [Membership(creator, "admin", now)] + [Membership(u, "member", now) for u in others]
    state = ConversationState(
        id=conversation_id,
        kind="group",
        title=_clean_title(title),
        members=tuple(longest_standing(members)),
        version=1,
        created_at=now,
    )
    return GroupChange(state=state, changed=True, added=tuple(sorted([creator, *others])))


def add_members(
    state: ConversationState | None, *, actor: str, user_ids: Iterable[str], now: datetime
) -> GroupChange:
    """Add users to a group; those already in it are left as they are.

    Raises:
        Forbidden: the actor is not an admin of this group (or see ``_acting_member``).
        TooLarge: the group would pass the members allowed.
    """
    group = _acting_member(state, actor)
    _require_admin(group, actor)
    current = {m.user_id for m in group.members}
    new = sorted(set(user_ids) - current)
    if not new:
        return GroupChange(state=group, changed=False)
    if len(current) + len(new) > MAX_GROUP_MEMBERS:
        raise TooLarge(f"a group has at most {MAX_GROUP_MEMBERS} members")
    members = [*group.members, *(Membership(u, "member", now) for u in new)]
    return GroupChange(
        state=_changed(group, members=tuple(longest_standing(members))),
        changed=True,
        added=tuple(new),
    )


def remove_member(state: ConversationState | None, *, actor: str, member_id: str) -> GroupChange:
    """Remove a member (an admin's decision), or leave (anyone, naming themself).

    Removing someone who is not a member changes nothing. When the last admin goes, the
    longest-standing remaining member becomes admin.

    Raises:
        Forbidden: a non-admin removing someone else (or see ``_acting_member``).
    """
    group = _acting_member(state, actor)
    if member_id != actor:
        _require_admin(group, actor)
    if group.member(member_id) is None:
        return GroupChange(state=group, changed=False)
    members = _keep_an_admin([m for m in group.members if m.user_id != member_id])
    return GroupChange(state=_changed(group, members=members), changed=True, removed=(member_id,))


def set_role(
    state: ConversationState | None, *, actor: str, member_id: str, role: Role
) -> GroupChange:
    """Give a member a role.

    Raises:
        Forbidden: the actor is not an admin (or see ``_acting_member``).
        NotFound: ``member_id`` is not a member of this group.
        Conflict: the change would leave the group without an admin.
    """
    group = _acting_member(state, actor)
    _require_admin(group, actor)
    target = group.member(member_id)
    if target is None:
        raise NotFound("no such member in this conversation")
    if target.role == role:
        return GroupChange(state=group, changed=False)
    members = [replace(m, role=role) if m.user_id == member_id else m for m in group.members]
    if not any(m.role == "admin" for m in members):
        raise Conflict("a group keeps at least one admin: appoint another first")
    return GroupChange(state=_changed(group, members=tuple(members)), changed=True)


def rename(state: ConversationState | None, *, actor: str, title: str) -> GroupChange:
    """Give a group a new title (surrounding blanks removed).

    Raises:
        Forbidden: the actor is not an admin (or see ``_acting_member``).
        BadRequest: a blank title.
    """
    group = _acting_member(state, actor)
    _require_admin(group, actor)
    cleaned = _clean_title(title)
    if cleaned == group.title:
        return GroupChange(state=group, changed=False)
    return GroupChange(state=_changed(group, title=cleaned), changed=True)
