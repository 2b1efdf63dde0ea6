"""The runtime's own tables are written for any schema: what a service's schema receives."""

from __future__ import annotations

import re

import pytest

from services.runtime.migrations import (
    RUNTIME_TABLES,
    migration_files,
    runtime_ddl,
    runtime_parts,
)


def test_parts_are_the_runtime_modules_with_tables() -> None:
    assert set(runtime_parts()) >= {"offsets", "outbox", "streams"}


@pytest.mark.parametrize("part", runtime_parts())
def test_every_part_renders_for_a_schema_without_leftover_placeholders(part: str) -> None:
    files = migration_files(RUNTIME_TABLES / part)
    assert files, f"{part} has no migration"
    assert [version for version, _ in files] == list(range(1, len(files) + 1))
    for _, path in files:
        ddl = runtime_ddl(path, schema="notifier")
        assert not re.search(r"\{[a-z_]+\}", ddl), ddl
        # Every table it touches is in the schema it was written for.
        for table in re.findall(r"(?:TABLE(?: IF NOT EXISTS)?|ON|INTO)\s+([a-z_]+\.[a-z_]+)", ddl):
            assert table.startswith("notifier."), table


def test_streams_part_grants_reads_to_the_schemas_reader_role_under_rls() -> None:
    (_, path), *_ = migration_files(RUNTIME_TABLES / "streams")
    ddl = runtime_ddl(path, schema="notifier")
    assert "CREATE ROLE notifier_reader NOLOGIN" in ddl
    assert "GRANT SELECT ON notifier.user_events TO notifier_reader" in ddl
    assert "ALTER TABLE notifier.user_events ENABLE ROW LEVEL SECURITY" in ddl
    assert "current_setting('app.user_id', true)" in ddl


@pytest.mark.parametrize("schema", ["Chat", "chat; DROP TABLE x", "1chat", "", "chat.x"])
def test_schema_names_are_checked_before_they_reach_ddl(schema: str) -> None:
    (_, path), *_ = migration_files(RUNTIME_TABLES / "offsets")
    with pytest.raises(ValueError):
        runtime_ddl(path, schema=schema)
