"""Versioned SQL migrations, one schema per service, and the runtime's tables in it.

A service's own files are ``NNNN_name.sql`` in its ``migrations/`` folder, applied in order,
each in its own transaction, recorded in ``<schema>.schema_migrations``. An advisory lock
serialises concurrent starts of several instances.

The tables the runtime works on (consumer offsets, the outbox, per-user streams, inbound
event ids) are not copied into each service's migrations: the runtime keeps their versioned
DDL under ``services/runtime/tables/<part>/``, written for any schema (``{schema}``, and
``{reader}`` for the role that reads on behalf of a user), and a service names the parts it
uses. They are applied to its schema after its own files (chat and presence created their
offsets, outbox and stream tables themselves before the runtime owned them, so for them the
runtime's first versions only record what exists) and recorded in
``<schema>.runtime_migrations``. A change to one of those tables is a new file in its part,
applied to every schema that uses it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from services.runtime.db import Connection, reader_role

log = logging.getLogger(__name__)

_FILE_PATTERN = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
# Schemas are our own constants; checked anyway, since they are spliced into DDL.
_SCHEMA_PATTERN = re.compile(r"^[a-z_][a-z0-9_]*$")

#: The runtime's tables, one folder of versioned DDL per part.
RUNTIME_TABLES = Path(__file__).parent / "tables"


def migration_files(directory: Path) -> list[tuple[int, Path]]:
    """(version, path) of every migration file, in version order."""
    found = []
    for path in directory.iterdir():
        match = _FILE_PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def runtime_parts() -> list[str]:
    """The parts a service may name (``offsets``, ``outbox``, ``streams``, ...)."""
    return sorted(path.name for path in RUNTIME_TABLES.iterdir() if path.is_dir())


def runtime_ddl(path: Path, *, schema: str) -> str:
    """A runtime part's migration written for ``schema``.

    Raises:
        ValueError: ``schema`` is not a plain lower-case identifier.
    """
    if not _SCHEMA_PATTERN.match(schema):
        raise ValueError(f"not a schema name we use: {schema!r}")
    return path.read_text().replace("{schema}", schema).replace("{reader}", reader_role(schema))


async def apply_migrations(
    conn: Connection,
    *,
    schema: str,
    directory: Path | None,
    runtime_tables: Sequence[str] = (),
) -> list[str]:
    """Apply what ``schema`` has not seen yet: the service's own files, then the runtime parts.

    Args:
        conn: a connection (not in a transaction).
        schema: the service's schema, created if missing.
        directory: the service's migrations folder (None: it has none of its own).
        runtime_tables: the runtime parts the service uses (see :func:`runtime_parts`).

    Returns:
        The files applied by this call (empty when up to date), runtime parts as
        ``part/file``.

    Raises:
        ValueError: an unknown part or schema name.
    """
    unknown = set(runtime_tables) - set(runtime_parts())
    if unknown:
        raise ValueError(f"unknown runtime tables: {sorted(unknown)}")
    lock_key = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:8], "big", signed=True)
    await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".runtime_migrations ('
            " part text NOT NULL, version integer NOT NULL, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (part, version))"
        )
        applied = []
        if directory is not None:
            done = {
                row["version"]
                for row in await conn.fetch(f'SELECT version FROM "{schema}".schema_migrations')
            }
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
                applied.append(path.name)
                log.info("migration applied", extra={"schema": schema, "migration": path.name})
        done_parts = {
            (row["part"], row["version"])
            for row in await conn.fetch(f'SELECT part, version FROM "{schema}".runtime_migrations')
        }
        for part in runtime_tables:
            for version, path in migration_files(RUNTIME_TABLES / part):
                if (part, version) in done_parts:
                    continue
                async with conn.transaction():
                    await conn.execute(runtime_ddl(path, schema=schema))
                    await conn.execute(
                        f'INSERT INTO "{schema}".runtime_migrations (part, version, name)'
                        " VALUES ($1, $2, $3)",
                        part,
                        version,
                        path.name,
                    )
                applied.append(f"{part}/{path.name}")
                log.info(
                    "runtime migration applied",
                    extra={"schema": schema, "migration": f"{part}/{path.name}"},
                )
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
