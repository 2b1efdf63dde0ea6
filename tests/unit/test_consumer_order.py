"""in_produced_order: a batch's partitions interleaved by timestamp, each kept in its order."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from services.runtime.consumer import in_produced_order


def record(partition: int, offset: int, timestamp: int) -> ConsumerRecord:
    return ConsumerRecord(
        topic="t",
        partition=partition,
        offset=offset,
        timestamp=timestamp,
        timestamp_type=0,
        key=None,
        value=b"",
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=0,
        headers=(),
    )


def positions(records: list[ConsumerRecord]) -> list[tuple[int, int]]:
    return [(r.partition, r.offset) for r in records]


def test_partitions_interleave_by_timestamp() -> None:
    p0 = [record(0, 0, 10), record(0, 1, 30)]
    p1 = [record(1, 0, 20), record(1, 1, 40)]
    assert positions(in_produced_order([p1, p0])) == [(0, 0), (1, 0), (0, 1), (1, 1)]


def test_a_partition_is_never_reordered_even_when_its_clocks_disagree() -> None:
    # Two producers with skewed clocks wrote to partition 0: offset 1 carries an earlier time.
    p0 = [record(0, 0, 50), record(0, 1, 5)]
    p1 = [record(1, 0, 10)]
    merged = positions(in_produced_order([p0, p1]))
    assert [pos for pos in merged if pos[0] == 0] == [(0, 0), (0, 1)]
    assert sorted(merged) == [(0, 0), (0, 1), (1, 0)]


def test_equal_timestamps_keep_the_partitions_order() -> None:
    p0 = [record(0, 0, 7), record(0, 1, 7)]
    p1 = [record(1, 0, 7)]
    assert positions(in_produced_order([p0, p1])) == [(0, 0), (0, 1), (1, 0)]
