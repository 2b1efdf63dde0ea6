"""Postgres helpers shared by services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from services.runtime.settings import DatabaseSettings

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection, whether opened directly or acquired from a pool.
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection


async def create_pool(settings: DatabaseSettings) -> asyncpg.Pool:
    """The service's connection pool, sized by its settings."""
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
    )
