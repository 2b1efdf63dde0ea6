"""is_retriable: infrastructure failures retry the batch; record failures do not."""

from __future__ import annotations

import asyncio

import asyncpg
import asyncpg.exceptions as pg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, RequestTimedOutError

from services.runtime.consumer import is_retriable
from services.runtime.errors import InfrastructureError, RecordRejected
from services.runtime.streams import StreamCreatedConcurrently

RETRIABLE_PG: list[type[asyncpg.PostgresError]] = [
    pg.DeadlockDetectedError,  # 40P01
    pg.SerializationError,  # 40001
    pg.AdminShutdownError,  # 57P01
    pg.CrashShutdownError,  # 57P02
    pg.CannotConnectNowError,  # 57P03
    pg.QueryCanceledError,  # 57014
    pg.TooManyConnectionsError,  # 53300
    pg.OutOfMemoryError,  # 53200
    pg.DiskFullError,  # 53100
    pg.PostgresConnectionError,  # 08000
    pg.ConnectionDoesNotExistError,  # 08003
    pg.ConnectionFailureError,  # 08006
    pg.PostgresIOError,  # 58030
    pg.PostgresSystemError,  # 58000
]

NOT_RETRIABLE_PG: list[type[asyncpg.PostgresError]] = [
    pg.UniqueViolationError,  # 23505
    pg.ForeignKeyViolationError,  # 23503
    pg.CheckViolationError,  # 23514
    pg.DataError,  # 22000
    pg.NumericValueOutOfRangeError,  # 22003
    pg.InvalidTextRepresentationError,  # 22P02
    pg.UndefinedTableError,  # 42P01
    pg.InsufficientPrivilegeError,  # 42501
    pg.SyntaxOrAccessError,  # 42000
]


def test_sqlstate_is_a_class_attribute() -> None:
    # The classification relies on asyncpg's per-class sqlstate, not on message text.
    assert pg.DeadlockDetectedError.sqlstate == "40P01"
    assert pg.DeadlockDetectedError("whatever").sqlstate == "40P01"
    assert pg.UniqueViolationError.sqlstate == "23505"


@pytest.mark.parametrize("error", RETRIABLE_PG, ids=lambda cls: cls.__name__)
def test_transient_postgres_errors_are_retriable(error: type[asyncpg.PostgresError]) -> None:
    assert error.sqlstate[:2] in {"08", "40", "53", "57", "58"}
    assert is_retriable(error("boom"))


@pytest.mark.parametrize("error", NOT_RETRIABLE_PG, ids=lambda cls: cls.__name__)
def test_record_postgres_errors_are_not_retriable(error: type[asyncpg.PostgresError]) -> None:
    assert not is_retriable(error("boom"))


def test_message_text_does_not_matter() -> None:
    assert not is_retriable(pg.UniqueViolationError("deadlock detected; connection lost"))
    assert is_retriable(pg.DeadlockDetectedError("duplicate key value"))


def test_postgres_error_without_sqlstate_is_not_retriable() -> None:
    assert not is_retriable(asyncpg.PostgresError("no sqlstate"))


def test_interface_errors_are_retriable() -> None:
    assert is_retriable(asyncpg.InterfaceError("connection is closed"))


@pytest.mark.parametrize(
    "error",
    [
        OSError("network down"),
        ConnectionResetError(),
        ConnectionRefusedError(),
        BrokenPipeError(),
        TimeoutError(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_os_and_timeout_errors_are_retriable(error: BaseException) -> None:
    assert is_retriable(error)


@pytest.mark.parametrize(
    "error",
    [KafkaConnectionError(), KafkaTimeoutError(), RequestTimedOutError()],
    ids=lambda exc: type(exc).__name__,
)
def test_transient_kafka_errors_are_retriable(error: BaseException) -> None:
    assert is_retriable(error)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("bad"),
        KeyError("k"),
        TypeError("t"),
        RuntimeError("r"),
        RecordRejected("invalid_data:x:missing"),
        asyncio.CancelledError(),
        KeyboardInterrupt(),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_other_errors_are_not_retriable(error: BaseException) -> None:
    assert not is_retriable(error)


def test_runtime_error_flags() -> None:
    assert InfrastructureError.retriable is True
    assert RecordRejected("r").retriable is False


def test_runtime_errors_are_retriable_as_they_say() -> None:
    # A stream created by another transaction meanwhile: the batch's view of that user was
    # stale, and trying again finds the stream and locks it.
    assert is_retriable(StreamCreatedConcurrently("notifier.user_streams"))
    assert is_retriable(InfrastructureError("broker gone"))
    assert not is_retriable(RecordRejected("r"))
