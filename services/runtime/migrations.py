"""Versioned SQL migrations, one schema per service.

Files are ``NNNN_name.sql`` in a service's ``migrations/`` folder, applied in order, each in its
own transaction, recorded in ``<schema>.schema_migrations``. An advisory lock serialises
concurrent starts of several instances.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from services.runtime.db import Connection

log = logging.getLogger(__name__)

_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    """(version, path) of every migration file, in version order."""
    found = []
    for path in directory.iterdir():
        match = _FILE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


async def apply_migrations(conn: Connection, *, schema: str, directory: Path) -> list[int]:
    """Apply the migrations of ``directory`` that ``schema`` has not seen yet.

    Returns:
        The versions applied by this call (empty when up to date).
    """
    lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            row["version"]
            for row in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
        }
        applied = []
        for version, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (version, name) VALUES ($1, $2)',
                    version,
                    path.name,
                )
            applied.append(version)
            log.info("migration applied", extra={"schema": schema, "migration": path.name})
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
