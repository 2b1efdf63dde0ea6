"""Registry: sessions by user and connection, delivery partitions (Kafka murmur2), targets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from services.gateway.domain.registry import Registry
from services.runtime.partitioning import partition_for_key

PARTITIONS = 8


@dataclass(frozen=True)
class FakeSession:
    user_id: str
    connection_id: str


def _registry(partitions: int = PARTITIONS) -> Registry[FakeSession]:
    return Registry[FakeSession](partitions=partitions)


def _same_partition_users(partitions: int = PARTITIONS) -> tuple[str, str, str]:
    """Two users sharing a partition and a third on another one, found by search."""
    by_partition: dict[int, list[str]] = {}
    for i in itertools.count():
        user = f"user-{i}"
        by_partition.setdefault(partition_for_key(user.encode(), partitions), []).append(user)
        pairs = [users for users in by_partition.values() if len(users) >= 2]
        if pairs and len(by_partition) >= 2:
            a, b = pairs[0][:2]
            shared = partition_for_key(a.encode(), partitions)
            other = next(us[0] for p, us in by_partition.items() if p != shared)
            return a, b, other
    raise AssertionError("unreachable")


@pytest.mark.parametrize("partitions", [1, 3, 8, 64])
@pytest.mark.parametrize("user", ["u1", "alice", "漢字-user", "x" * 128])
def test_add_returns_the_kafka_partition_of_the_user(partitions: int, user: str) -> None:
    registry = _registry(partitions)
    expected = partition_for_key(user.encode(), partitions)
    assert registry.add(FakeSession(user, "c1")) == expected
    assert registry.partition_of(user) == expected
    assert registry.needed_partitions() == {expected}
    assert registry.partitions == partitions


def test_partition_of_uses_the_utf8_key() -> None:
    # Kafka producers key delivery records by the UTF-8 user id: a known Java vector.
    # murmur2(b"foobar") = -790332482; toPositive & 0x7fffffff = 1357151166; % 8 = 6.
    assert _registry(8).partition_of("foobar") == 6


def test_users_land_on_several_partitions() -> None:
    registry = _registry(PARTITIONS)
    assert len({registry.partition_of(f"user-{i}") for i in range(200)}) == PARTITIONS


def test_two_devices_of_one_user() -> None:
    registry = _registry()
    phone, laptop = FakeSession("u1", "phone"), FakeSession("u1", "laptop")
    assert not registry.has_user("u1")
    assert registry.add(phone) == registry.add(laptop)
    assert len(registry) == 2
    assert set(registry.targets("u1", None)) == {phone, laptop}
    assert registry.needed_partitions() == {registry.partition_of("u1")}
    registry.remove(phone)
    assert list(registry.targets("u1", None)) == [laptop]
    assert registry.has_user("u1")
    assert registry.needed_partitions() == {registry.partition_of("u1")}
    registry.remove(laptop)
    assert list(registry.targets("u1", None)) == []
    assert not registry.has_user("u1")
    assert registry.needed_partitions() == set()


def test_targets_for_a_user_are_only_that_users_sessions() -> None:
    registry = _registry()
    a1, a2, b1 = FakeSession("a", "a1"), FakeSession("a", "a2"), FakeSession("b", "b1")
    for session in (a1, a2, b1):
        registry.add(session)
    assert set(registry.targets("a", None)) == {a1, a2}
    assert list(registry.targets("b", None)) == [b1]
    assert list(registry.targets("nobody", None)) == []


def test_targets_for_one_connection() -> None:
    registry = _registry()
    a1, a2, b1 = FakeSession("a", "a1"), FakeSession("a", "a2"), FakeSession("b", "b1")
    for session in (a1, a2, b1):
        registry.add(session)
    assert list(registry.targets("a", "a2")) == [a2]
    assert list(registry.targets("b", "b1")) == [b1]


def test_targets_for_another_users_connection_is_nothing() -> None:
    registry = _registry()
    registry.add(FakeSession("a", "a1"))
    registry.add(FakeSession("b", "b1"))
    assert list(registry.targets("a", "b1")) == []
    assert list(registry.targets("nobody", "a1")) == []


def test_targets_for_an_unknown_or_removed_connection_is_nothing() -> None:
    registry = _registry()
    a1, a2 = FakeSession("a", "a1"), FakeSession("a", "a2")
    registry.add(a1)
    registry.add(a2)
    assert list(registry.targets("a", "zzz")) == []
    registry.remove(a1)
    assert list(registry.targets("a", "a1")) == []
    assert list(registry.targets("a", "a2")) == [a2]


def test_search_finds_users_sharing_a_partition() -> None:
    a, b, other = _same_partition_users()
    registry = _registry()
    assert a != b
    assert registry.partition_of(a) == registry.partition_of(b) != registry.partition_of(other)


def test_partition_stays_needed_while_another_user_on_it_remains() -> None:
    a, b, other = _same_partition_users()
    registry = _registry()
    shared, elsewhere = registry.partition_of(a), registry.partition_of(other)
    sa, sb, so = FakeSession(a, "ca"), FakeSession(b, "cb"), FakeSession(other, "co")
    for session in (sa, sb, so):
        registry.add(session)
    assert registry.needed_partitions() == {shared, elsewhere}
    registry.remove(sa)
    assert registry.needed_partitions() == {shared, elsewhere}
    registry.remove(sb)
    assert registry.needed_partitions() == {elsewhere}
    registry.remove(so)
    assert registry.needed_partitions() == set()


def test_a_second_device_does_not_count_as_a_second_user_on_the_partition() -> None:
    a, b, _ = _same_partition_users()
    registry = _registry()
    a1, a2, b1 = FakeSession(a, "a1"), FakeSession(a, "a2"), FakeSession(b, "b1")
    for session in (a1, a2, b1):
        registry.add(session)
    registry.remove(b1)
    registry.remove(a1)
    assert registry.needed_partitions() == {registry.partition_of(a)}
    registry.remove(a2)
    assert registry.needed_partitions() == set()


def test_remove_twice_is_harmless() -> None:
    a, b, _ = _same_partition_users()
    registry = _registry()
    sa, sb = FakeSession(a, "ca"), FakeSession(b, "cb")
    registry.add(sa)
    registry.add(sb)
    registry.remove(sa)
    registry.remove(sa)
    # A repeat must not decrement the partition's user count a second time.
    assert registry.needed_partitions() == {registry.partition_of(b)}
    assert len(registry) == 1
    assert list(registry.targets(b, None)) == [sb]


def test_remove_of_a_never_added_session_is_harmless() -> None:
    registry = _registry()
    kept = FakeSession("a", "a1")
    registry.add(kept)
    registry.remove(FakeSession("b", "b1"))
    assert len(registry) == 1
    assert registry.needed_partitions() == {registry.partition_of("a")}


def test_adding_the_same_session_twice_counts_once() -> None:
    registry = _registry()
    session = FakeSession("a", "a1")
    registry.add(session)
    registry.add(session)
    assert len(registry) == 1
    registry.remove(session)
    assert len(registry) == 0
    assert registry.needed_partitions() == set()


def test_len_and_sessions() -> None:
    registry = _registry()
    assert len(registry) == 0
    sessions = [FakeSession(f"u{i % 3}", f"c{i}") for i in range(7)]
    for count, session in enumerate(sessions, start=1):
        registry.add(session)
        assert len(registry) == count
    assert set(registry.sessions()) == set(sessions)
    for count, session in enumerate(sessions, start=1):
        registry.remove(session)
        assert len(registry) == len(sessions) - count
    assert registry.sessions() == []
    assert registry.needed_partitions() == set()


def test_readding_after_removal_restores_the_partition() -> None:
    registry = _registry()
    session = FakeSession("a", "a1")
    registry.add(session)
    registry.remove(session)
    assert registry.add(session) == registry.partition_of("a")
    assert registry.needed_partitions() == {registry.partition_of("a")}
