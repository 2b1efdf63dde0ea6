"""Helpers of the erasure tests: the ``erase-user`` command run as operators run it, a scan of
every column of every table for traces of a user, and the services' reports read from Kafka.

Nothing here stands in for a service: the command is the real one (a subprocess against the
real broker), the scan reads what Postgres holds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import topics
from services.runtime import codec
from tests.integration.harness import System, seconds

#: Schemas of Postgres itself, never scanned.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


async def erase_user(
    system: System,
    user_id: str,
    *,
    timeout_s: float = seconds(120),
    services: str = "chat,presence,notifier",
) -> tuple[int, list[dict[str, Any]]]:
    """``python -m services.runtime.erasure erase-user <user_id>`` with the services'
    environment; returns its exit code and its JSON lines."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.runtime.erasure",
        "erase-user",
        user_id,
        "--timeout-s",
        str(timeout_s),
        "--services",
        services,
        env=system.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s + seconds(30))
    assert process.returncode is not None
    lines = [orjson.loads(line) for line in stdout.splitlines() if line.strip()]
    if process.returncode != 0:
        print(stderr.decode(errors="replace"))  # noqa: T201  (shown when the test fails)
    return process.returncode, lines


async def traces(conn: asyncpg.Connection, needles: list[str]) -> list[tuple[str, str, str]]:
    """Every (table, column, needle) where a row of any table of any schema holds one of
    ``needles``: text, json, arrays, search vectors (cast to text) and bytea (as UTF-8 bytes).

    Generic by design: a table or column added later is scanned without being named here.
    """
    columns = await conn.fetch(
        "SELECT c.table_schema, c.table_name, c.column_name, c.data_type"
        " FROM information_schema.columns c JOIN information_schema.tables t"
        "   USING (table_schema, table_name)"
        " WHERE t.table_type = 'BASE TABLE' AND NOT (c.table_schema = ANY($1::text[]))"
        " ORDER BY 1, 2, 3",
        list(_SYSTEM_SCHEMAS),
    )
    found = []
    for column in columns:
        table = f'"{column["table_schema"]}"."{column["table_name"]}"'
        name = f'"{column["column_name"]}"'
        if column["data_type"] == "bytea":
            test = f"position(convert_to($1, 'UTF8') in {name}) > 0"
        else:
            test = f"strpos({name}::text, $1) > 0"
        for needle in needles:
            if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE {test})", needle):
                found.append((table, column["column_name"], needle))
    return found


async def until_no_traces(
    system: System, needles: list[str], timeout_s: float = seconds(20)
) -> None:
    """Wait until the scan finds none of ``needles``: published outbox rows are deleted within
    the relay's interval, after the reports that say the erasure is done. Fails with what is
    left."""
    conn = await asyncpg.connect(system.database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while found := await traces(conn, needles):
            if time.monotonic() > deadline:
                raise AssertionError(f"traces left after the erasure: {found}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


async def reports(
    system: System, user_id: str, request_id: str, *, count: int, timeout_s: float = seconds(60)
) -> list[dict[str, Any]]:
    """The first ``count`` distinct (service, step) reports of a request on users.erased.v1."""
    topic = system.topic(topics.USERS_ERASED)
    # From the first offset by the reset policy, not seek_to_beginning(): a seek can race the
    # fetch that assign() started (test_consumer_skips.py).
    consumer = AIOKafkaConsumer(
        bootstrap_servers=system.kafka_bootstrap, auto_offset_reset="earliest"
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = sorted(p["partition"] for p in described["partitions"])
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        found: dict[tuple[str, str], dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} reports: {list(found)}")
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    envelope = codec.decode(record.value, record.headers)
                    data = envelope.data
                    if data["user_id"] == user_id and data["request"]["id"] == request_id:
                        found.setdefault((data["service"], data["step"]), data)
        return list(found.values())
    finally:
        await consumer.stop()
