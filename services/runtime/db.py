"""Postgres helpers shared by services."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    #: A connection, whether opened directly or acquired from a pool.
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection
