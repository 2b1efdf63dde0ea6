"""The offset store: each partition's next offset, in ``<schema>.consumer_offsets``.

Offsets live in Postgres, written in the transaction of the state they produced, so a record's
effects are applied exactly once whatever crashes. On assignment every owned partition gets its
row; each batch first locks its partitions' rows (the fence) and ends by storing the next
offsets. Rows are locked in (topic, partition) order, so consumers sharing a partition during
a rebalance wait for each other instead of deadlocking. The offsets committed to Kafka are
only a hint for tools (see :mod:`services.runtime.consumer`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import asyncpg
from aiokafka import TopicPartition

from services.runtime.db import Connection, Cte


class OffsetStore:
    """The stored offsets of one consumer group.

    Args:
        schema: the owning service's schema (its ``consumer_offsets`` table).
        group_id: the consumer group, part of every row's key.
    """

    def __init__(self, *, schema: str, group_id: str) -> None:
        self._table = f'"{schema}".consumer_offsets'
        self._group_id = group_id

    async def claim(
        self, pool: asyncpg.Pool, partitions: Collection[TopicPartition], topics: Sequence[str]
    ) -> dict[TopicPartition, int]:
        """Create the rows of newly assigned partitions and read the stored offsets of
        ``topics``. Every owned partition then has a row for :meth:`fence` to lock (two owners
        overlapping in a rebalance serialise on it).

        Returns:
            The next offset to apply of each partition that has a row (absent: none yet).
        """
        await pool.execute(
            f"INSERT INTO {self._table} (group_id, topic, partition, next_offset)"
            " SELECT $1, t, p, 0 FROM unnest($2::text[], $3::int[]) AS u(t, p)"
            " ON CONFLICT DO NOTHING",
            self._group_id,
            [tp.topic for tp in partitions],
            [tp.partition for tp in partitions],
        )
        rows = await pool.fetch(
            f"SELECT topic, partition, next_offset FROM {self._table}"
            " WHERE group_id = $1 AND topic = ANY($2::text[])",
            self._group_id,
            list(topics),
        )
        return _by_partition(rows)

    async def fence(
        self, conn: Connection, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Lock the batch's offset rows (one statement) and return the stored next offsets.

        Records below a stored offset were applied already (by us before a retry, or by the
        consumer that owned the partition before a rebalance) and are skipped. The lock makes a
        consumer that lost its partition mid-batch wait, then skip what the new owner applied.
        """
        rows = await conn.fetch(
            f"SELECT topic, partition, next_offset FROM {self._table}"
            " WHERE group_id = $1 AND (topic, partition) IN"
            " (SELECT * FROM unnest($2::text[], $3::int[]))"
            " ORDER BY topic, partition FOR UPDATE",
            self._group_id,
            [tp.topic for tp in partitions],
            [tp.partition for tp in partitions],
        )
        return _by_partition(rows)

    def store(self, offsets: Mapping[TopicPartition, int]) -> Cte:
        """The statement part that stores next offsets (never moving one back), for the
        batch's closing statement (:meth:`services.runtime.outbox.Outbox.stage`)."""
        return Cte(
            "stored",
            f"INSERT INTO {self._table} AS o (group_id, topic, partition, next_offset)"
            " SELECT $1, * FROM unnest($2::text[], $3::int[], $4::bigint[])"
            " ON CONFLICT (group_id, topic, partition)"
            " DO UPDATE SET next_offset = greatest(o.next_offset, excluded.next_offset)",
            (
                self._group_id,
                [tp.topic for tp in offsets],
                [tp.partition for tp in offsets],
                list(offsets.values()),
            ),
        )


def _by_partition(rows: Sequence[asyncpg.Record]) -> dict[TopicPartition, int]:
    return {TopicPartition(row["topic"], row["partition"]): row["next_offset"] for row in rows}
