"""Inbound CloudEvents applied once per (source, id), whatever the publisher repeats.

Offsets make each *record*'s effects happen once. Events from other teams' services can also
arrive as two records of one event: a publisher's retry after a timeout, a re-send after its
own crash, a replay. The CloudEvents envelope identifies an event by ``source`` and ``id``;
a consumer opts in per topic (``TransactionalConsumer(dedupe_topics=...)``, for topics fed
from outside), and its service lists the runtime's ``inbound`` tables
(``<schema>.inbound_events``).

Inside the batch's transaction, after the offset fence, one statement claims the keys of the
batch's fresh records of those topics (``INSERT … ON CONFLICT DO NOTHING RETURNING``): a key
returned is new and its first record is applied; any other record with a claimed key is
skipped (counted in ``realtime_inbound_duplicates_total``), its offset stored with the batch.
A claim of a key that another transaction claimed and has not committed yet waits for it, so
two consumers holding the same event in different partitions never both apply it.

A dead-lettered record is not remembered: the consumer's careful re-run (one savepoint per
record, taken when a record fails) claims each key inside the record's savepoint, so a
rejected record's claim rolls back with it and a corrected re-publication is applied.

Retention: claims older than the retention (``INBOUND_RETENTION_HOURS``, default 168 h, the
7 days Kafka keeps a topic by default) are deleted in bounded batches every few minutes; an
event repeated after that is applied again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import asyncpg

from services.runtime.db import Connection

log = logging.getLogger(__name__)

#: A CloudEvent's identity: (source, id).
EventKey = tuple[str, str]

#: Rows deleted per pruning statement: short locks, short transactions.
_PRUNE_BATCH = 5000


class InboundEvents:
    """The keys of inbound events a service has applied, in ``<schema>.inbound_events``.

    Args:
        schema: the owning service's schema.
        retention_s: how long a key is remembered.
    """

    def __init__(self, *, schema: str, retention_s: float) -> None:
        self._table = f'"{schema}".inbound_events'
        self._retention_s = retention_s

    async def claim(self, conn: Connection, keys: Sequence[EventKey]) -> set[EventKey]:
        """Record ``keys`` as applied in the caller's transaction (one statement).

        Returns:
            The keys that were new: each one's first record is to be applied; a key absent
            here was applied before (or is claimed by a transaction this one waited for).
        """
        if not keys:
            return set()
        rows = await conn.fetch(
            f"INSERT INTO {self._table} (source, id)"
            " SELECT * FROM unnest($1::text[], $2::text[])"
            " ON CONFLICT DO NOTHING RETURNING source, id",
            [source for source, _ in keys],
            [event_id for _, event_id in keys],
        )
        return {(row["source"], row["id"]) for row in rows}

    async def prune(self, pool: asyncpg.Pool) -> int:
        """Delete keys older than the retention, a bounded batch per statement.

        Returns:
            How many were deleted.
        """
        total = 0
        while True:
            result = await pool.execute(
                f"DELETE FROM {self._table} WHERE ctid IN (SELECT ctid FROM {self._table}"
                " WHERE seen_at < now() - make_interval(secs => $1) LIMIT $2)",
                self._retention_s,
                _PRUNE_BATCH,
            )
            deleted = int(result.split()[-1])
            total += deleted
            if deleted < _PRUNE_BATCH:
                return total

    async def run_pruning(self, pool: asyncpg.Pool, *, interval_s: float) -> None:
        """Prune forever; a failure is logged and retried at the next interval."""
        while True:
            try:
                deleted = await self.prune(pool)
                if deleted:
                    log.info("inbound event keys pruned", extra={"rows": deleted})
            except Exception:
                log.exception("pruning inbound event keys failed; retrying")
            await asyncio.sleep(interval_s)


def first_of_each(keys: Sequence[EventKey | None], new: set[EventKey]) -> list[bool]:
    """Which records to apply, given their keys in apply order and the keys just claimed.

    A record without a key (not of a deduplicated topic, or undecodable: it is dead-lettered
    later) is always applied; of the records sharing a claimed key only the first is. Pure.
    """
    fresh = set(new)
    verdicts = []
    for key in keys:
        if key is None:
            verdicts.append(True)
        elif key in fresh:
            fresh.discard(key)
            verdicts.append(True)
        else:
            verdicts.append(False)
    return verdicts
