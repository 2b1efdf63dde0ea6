"""What every service's composition root needs to start and stop the same way.

main --run_cli--> settings read once --> ``migrate`` or ``serve`` (uvloop)
serve: build components --> freeze_start_up --> run until SIGTERM/SIGINT or a component dies
       --> stop in order
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import asyncpg
import uvicorn
import uvloop

from services.runtime.logs import configure_logging
from services.runtime.migrations import apply_migrations

log = logging.getLogger(__name__)

SettingsT = TypeVar("SettingsT")


def utc_now() -> datetime:
    """The production clock (domain code receives it injected)."""
    return datetime.now(UTC)


def new_id() -> str:
    """A random id for messages and events (injected into domain code): 128 random bits as 32
    hex digits, the shape of ``uuid4().hex`` at a fifth of its cost (no UUID object)."""
    return os.urandom(16).hex()


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def freeze_start_up(*, young_gc_threshold: int | None = None) -> None:
    """Put everything made so far (modules, models, the composition) out of the cyclic
    collector's sight, once the service is composed.

    It lives as long as the process, yet every full collection traversed all of it: in a
    burst (a job alert's 10,000 notifications) the notifier paused ~60 ms in one, a tenth
    of its work; frozen, the same collection takes ~7 ms (docs/performance.md).

    Args:
        young_gc_threshold: allocations between collections of the youngest generation
            (CPython's default, 700, when None). For a service whose batches make thousands
            of objects that all live until the batch ends: each collection at the default
            rate scanned them again only to promote them.
    """
    gc.collect()
    gc.freeze()
    if young_gc_threshold is not None:
        _, middle, oldest = gc.get_threshold()
        gc.set_threshold(young_gc_threshold, middle, oldest)


def http_server(app: object, *, host: str, port: int) -> QuietServer:
    """An internal HTTP server for ``app`` with logging left to our JSON handler."""
    return QuietServer(
        uvicorn.Config(
            app,  # type: ignore[arg-type]
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )


async def migrate(
    database_url: str, *, schema: str, directory: Path | None, runtime_tables: Sequence[str]
) -> list[str]:
    """Apply a service's pending migrations and runtime tables; returns the files applied."""
    conn = await asyncpg.connect(database_url)
    try:
        return await apply_migrations(
            conn, schema=schema, directory=directory, runtime_tables=runtime_tables
        )
    finally:
        await conn.close()


def stop_signal() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


async def stop_within(
    stopping: Awaitable[object],
    timeout_s: float,
    *,
    exit_now: Callable[[int], NoReturn] = os._exit,
) -> None:
    """Await a service's stop; past ``timeout_s``, exit the process at once with status 1.

    A stop stuck in a client library (a Kafka consumer leaving a group whose coordinator never
    answers) would leave the process up and useless, and a supervisor restarts only a process
    that exited. ``os._exit``, not ``SystemExit``: unwinding would wait for the same stuck
    tasks.
    """
    try:
        await asyncio.wait_for(stopping, timeout_s)
    except TimeoutError:
        log.error("stop did not finish in time; exiting", extra={"timeout_s": timeout_s})
        logging.shutdown()
        exit_now(1)


async def until_stopped(stopping: asyncio.Event, components: list[asyncio.Task[None]]) -> bool:
    """Wait for a stop signal or for a component to end on its own.

    Returns:
        True when a component crashed (logged here); the caller stops the rest and exits 1.
    """
    stop_task = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait({*components, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    crashed = [
        task
        for task in done
        if task is not stop_task and not task.cancelled() and task.exception() is not None
    ]
    for task in crashed:
        log.error(
            "component stopped unexpectedly",
            exc_info=task.exception(),
            extra={"component": task.get_name()},
        )
    return bool(crashed)


def run_cli(
    *,
    service: str,
    load_settings: Callable[[], SettingsT],
    log_level: Callable[[SettingsT], str],
    serve: Callable[[SettingsT], Coroutine[Any, Any, None]],
    migrate: Callable[[SettingsT], Coroutine[Any, Any, list[str]]],
) -> None:
    """``python -m services.<service> [serve|migrate]``: settings are read here, once."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = load_settings()
    configure_logging(service, log_level(settings))
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings))
        print(f"migrations applied: {applied or 'none (up to date)'}")  # noqa: T201
        return
    uvloop.run(serve(settings))
