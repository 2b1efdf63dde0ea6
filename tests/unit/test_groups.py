"""Group decisions: who may change what, succession of admins, limits, no-op repeats."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.frames import MAX_GROUP_MEMBERS
from services.chat.domain.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from services.chat.domain.groups import (
    ConversationState,
    GroupChange,
    Membership,
    add_members,
    create_group,
    longest_standing,
    remove_member,
    rename,
    set_role,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def group(**roles: str) -> ConversationState:
    """A group whose members joined one minute apart, in the order given."""
    return ConversationState(
        id="g1",
        kind="group",
        title="Team",
        members=tuple(
            Membership(user, "admin" if role == "admin" else "member", at(i))
            for i, (user, role) in enumerate(roles.items())
        ),
        version=3,
        created_at=T0,
    )


def roles(change: GroupChange) -> dict[str, str]:
    return {m.user_id: m.role for m in change.state.members}


def test_create_makes_the_creator_admin_and_ignores_repeats_and_the_creator() -> None:
    change = create_group(
        conversation_id="g1",
        existing=None,
        creator="ann",
        title="  Team  ",
        member_ids=["bob", "cat", "bob", "ann"],
        now=T0,
    )
    assert change.changed and change.state.version == 1
    assert roles(change) == {"ann": "admin", "bob": "member", "cat": "member"}
    assert change.state.title == "Team"
    assert change.added == ("ann", "bob", "cat")
    assert change.audience == ["ann", "bob", "cat"]


def create(
    member_ids: list[str], *, title: str = "T", existing: ConversationState | None = None
) -> GroupChange:
    return create_group(
        conversation_id="g1",
        existing=existing,
        creator="ann",
        title=title,
        member_ids=member_ids,
        now=T0,
    )


def test_create_refusals() -> None:
    with pytest.raises(BadRequest):
        create(["ann"])
    with pytest.raises(BadRequest):
        create(["bob"], title="   ")
    with pytest.raises(Conflict):
        create(["bob"], existing=group(ann="admin"))
    with pytest.raises(TooLarge):
        create([f"u{i}" for i in range(MAX_GROUP_MEMBERS)])


def test_a_resend_of_a_named_creation_is_the_group_as_it_is() -> None:
    first = group(ann="admin", bob="member")

    def resend(existing: ConversationState, creator: str = "ann") -> GroupChange:
        return create_group(
            conversation_id="g1",
            existing=existing,
            creator=creator,
            title="Another title",
            member_ids=["cat"],
            now=at(9),
            resend_safe=True,
        )

    again = resend(first)
    assert not again.changed and again.state == first
    with pytest.raises(Forbidden):
        resend(group(bob="admin", cat="member"))
    direct = ConversationState(
        id="g1", kind="direct", title=None, members=first.members, version=0, created_at=T0
    )
    with pytest.raises(Conflict):
        resend(direct)


def test_only_members_of_a_group_act_and_direct_conversations_never_change() -> None:
    with pytest.raises(Forbidden):
        rename(None, actor="ann", title="x")
    with pytest.raises(Forbidden):
        rename(group(ann="admin"), actor="eve", title="x")
    direct = ConversationState("dm_1", "direct", None, group(a="m", b="m").members, 0, T0)
    with pytest.raises(Forbidden):
        rename(direct, actor="a", title="x")
    with pytest.raises(Forbidden):
        remove_member(direct, actor="a", member_id="a")
    with pytest.raises(Forbidden):
        add_members(direct, actor="a", user_ids=["c"], now=T0)


def test_non_admins_are_refused_every_admin_change() -> None:
    state = group(ann="admin", bob="member", cat="member")
    with pytest.raises(Forbidden):
        add_members(state, actor="bob", user_ids=["dan"], now=T0)
    with pytest.raises(Forbidden):
        remove_member(state, actor="bob", member_id="cat")
    with pytest.raises(Forbidden):
        set_role(state, actor="bob", member_id="bob", role="admin")
    with pytest.raises(Forbidden):
        rename(state, actor="bob", title="Mine")


def test_add_is_idempotent_and_bounded() -> None:
    state = group(ann="admin", bob="member")
    change = add_members(state, actor="ann", user_ids=["cat", "bob", "cat"], now=at(9))
    assert change.changed and change.added == ("cat",) and change.state.version == 4
    assert [m.user_id for m in change.state.members] == ["ann", "bob", "cat"]
    again = add_members(change.state, actor="ann", user_ids=["cat"], now=at(10))
    assert not again.changed and again.state is change.state
    full = group(ann="admin", **{f"u{i}": "member" for i in range(MAX_GROUP_MEMBERS - 1)})
    with pytest.raises(TooLarge):
        add_members(full, actor="ann", user_ids=["one-too-many"], now=T0)


def test_remove_tells_the_removed_member_too_and_a_repeat_changes_nothing() -> None:
    state = group(ann="admin", bob="member", cat="member")
    change = remove_member(state, actor="ann", member_id="cat")
    assert change.removed == ("cat",)
    assert change.state.member_ids == ["ann", "bob"]
    assert change.audience == ["ann", "bob", "cat"]
    assert not remove_member(change.state, actor="ann", member_id="cat").changed


def test_anyone_may_leave_and_the_last_admin_leaving_promotes_the_longest_standing() -> None:
    state = group(ann="admin", bob="member", cat="member")
    left = remove_member(state, actor="ann", member_id="ann")
    assert roles(left) == {"bob": "admin", "cat": "member"}
    by_member = remove_member(state, actor="cat", member_id="cat")
    assert roles(by_member) == {"ann": "admin", "bob": "member"}


def test_succession_ties_are_broken_by_user_id() -> None:
    members = (
        Membership("zed", "member", at(1)),
        Membership("amy", "member", at(1)),
        Membership("old", "admin", at(0)),
    )
    state = ConversationState("g", "group", "T", members, 1, T0)
    after = remove_member(state, actor="old", member_id="old")
    assert roles(after) == {"amy": "admin", "zed": "member"}
    assert [m.user_id for m in longest_standing(members)] == ["old", "amy", "zed"]


def test_the_last_member_leaving_leaves_an_empty_group() -> None:
    after = remove_member(group(ann="admin"), actor="ann", member_id="ann")
    assert after.state.members == () and after.audience == ["ann"]


def test_roles() -> None:
    state = group(ann="admin", bob="member")
    promoted = set_role(state, actor="ann", member_id="bob", role="admin")
    assert roles(promoted) == {"ann": "admin", "bob": "admin"}
    assert not set_role(promoted.state, actor="ann", member_id="bob", role="admin").changed
    stepped_down = set_role(promoted.state, actor="ann", member_id="ann", role="member")
    assert roles(stepped_down) == {"ann": "member", "bob": "admin"}
    with pytest.raises(Conflict):
        set_role(state, actor="ann", member_id="ann", role="member")
    with pytest.raises(NotFound):
        set_role(state, actor="ann", member_id="eve", role="admin")


def test_rename() -> None:
    state = group(ann="admin")
    change = rename(state, actor="ann", title=" New ")
    assert change.changed and change.state.title == "New" and change.state.version == 4
    assert not rename(change.state, actor="ann", title="New").changed
    with pytest.raises(BadRequest):
        rename(state, actor="ann", title=" ")
