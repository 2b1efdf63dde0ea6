"""Liveness and readiness: ``/healthz`` answers while the process runs; ``/readyz`` only when
every dependency check passes (Kafka and Postgres reachable, consumer assigned)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]

#: Content type and body of a Prometheus scrape.
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST


def metrics_body() -> bytes:
    """The text exposition of every registered metric."""
    return generate_latest()


class Readiness:
    """Named dependency checks evaluated together, each bounded by a timeout."""

    def __init__(self, *, timeout_s: float = 1.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout_s = timeout_s

    def add(self, name: str, check: Check) -> None:
        """Register a check; it returns True when the dependency is usable."""
        self._checks[name] = check

    async def evaluate(self) -> tuple[bool, dict[str, bool]]:
        """Run every check concurrently; a check that raises or times out counts as failed."""
        names = list(self._checks)
        results = await asyncio.gather(
            *(self._run(self._checks[name]) for name in names), return_exceptions=False
        )
        detail = dict(zip(names, results, strict=True))
        return all(results), detail

    async def _run(self, check: Check) -> bool:
        try:
            return await asyncio.wait_for(check(), self._timeout_s)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False


def postgres_check(pool: asyncpg.Pool) -> Check:
    """A readiness check that Postgres answers ``SELECT 1`` through the pool."""

    async def check() -> bool:
        return bool(await pool.fetchval("SELECT 1") == 1)

    return check
