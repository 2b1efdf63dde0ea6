"""Which users and connections this gateway holds, and which delivery partitions that needs.

Pure bookkeeping: the adapters add and remove sessions; the delivery tail asks which
partitions to consume and which sessions a frame goes to.
"""

from __future__ import annotations

from typing import Generic, Protocol, TypeVar

from services.runtime.partitioning import partition_for_key


class Addressable(Protocol):
    """What the registry needs to know of a connection: whose it is and its id (the two things
    a delivery record addresses). :class:`services.gateway.session.Session` is one."""

    @property
    def user_id(self) -> str: ...

    @property
    def connection_id(self) -> str: ...


SessionT = TypeVar("SessionT", bound=Addressable)


class Registry(Generic[SessionT]):
    """Sessions by user and by connection id, and users per delivery partition."""

    def __init__(self, *, partitions: int) -> None:
        self._partitions = partitions
        self._by_user: dict[str, dict[str, SessionT]] = {}
        self._by_connection: dict[str, SessionT] = {}
        self._users_per_partition: dict[int, int] = {}

    @property
    def partitions(self) -> int:
        """The delivery topic's partition count."""
        return self._partitions

    def partition_of(self, user_id: str) -> int:
        """The delivery partition holding this user's frames (Kafka's default partitioner)."""
        return partition_for_key(user_id.encode(), self._partitions)

    def add(self, session: SessionT) -> int:
        """Register a session; returns the partition its user's frames arrive on."""
        partition = self.partition_of(session.user_id)
        sessions = self._by_user.setdefault(session.user_id, {})
        if not sessions:
            self._users_per_partition[partition] = self._users_per_partition.get(partition, 0) + 1
        sessions[session.connection_id] = session
        self._by_connection[session.connection_id] = session
        return partition

    def remove(self, session: SessionT) -> None:
        """Forget a session (idempotent)."""
        if self._by_connection.pop(session.connection_id, None) is None:
            return
        sessions = self._by_user.get(session.user_id, {})
        sessions.pop(session.connection_id, None)
        if not sessions:
            self._by_user.pop(session.user_id, None)
            partition = self.partition_of(session.user_id)
            remaining = self._users_per_partition.get(partition, 0) - 1
            if remaining > 0:
                self._users_per_partition[partition] = remaining
            else:
                self._users_per_partition.pop(partition, None)

    def needed_partitions(self) -> set[int]:
        """Partitions that hold at least one connected user."""
        return set(self._users_per_partition)

    def has_user(self, user_id: str) -> bool:
        """Whether ``user_id`` has a connection here."""
        return user_id in self._by_user

    def targets(self, user_id: str, connection_id: str | None) -> tuple[SessionT, ...]:
        """Sessions a frame for ``user_id`` goes to: one connection, or all of the user's."""
        if connection_id is not None:
            session = self._by_connection.get(connection_id)
            return () if session is None or session.user_id != user_id else (session,)
        return tuple(self._by_user.get(user_id, {}).values())

    def oldest_beyond(self, user_id: str, limit: int) -> list[SessionT]:
        """The user's oldest sessions past the first ``limit`` (newest kept), oldest first."""
        sessions = list(self._by_user.get(user_id, {}).values())
        return sessions[: max(len(sessions) - limit, 0)]

    def sessions(self) -> list[SessionT]:
        """Every session (for shutdown)."""
        return list(self._by_connection.values())

    def __len__(self) -> int:
        return len(self._by_connection)
