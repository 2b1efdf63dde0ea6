"""split_by_partition: a large fetch as parts of whole partitions, even in bytes."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from services.runtime.consumer import split_by_partition


def batch(sizes: dict[int, list[int]]) -> dict[TopicPartition, list[ConsumerRecord]]:
    """Partition -> the value sizes of its records, in offset order."""
    return {
        TopicPartition("t", partition): [
            ConsumerRecord(
                topic="t",
                partition=partition,
                offset=offset,
                timestamp=0,
                timestamp_type=0,
                key=None,
                value=b"x" * size,
                checksum=None,
                serialized_key_size=0,
                serialized_value_size=size,
                headers=(),
            )
            for offset, size in enumerate(values)
        ]
        for partition, values in sizes.items()
    }


def shape(parts: list[dict[TopicPartition, list[ConsumerRecord]]]) -> list[list[int]]:
    return [sorted(tp.partition for tp in part) for part in parts]


def test_a_large_fetch_is_split_evenly_by_bytes_keeping_partitions_whole() -> None:
    fetch = batch({0: [400, 400], 1: [500], 2: [300], 3: [100, 100]})
    parts = split_by_partition(fetch, most=2, min_bytes=100)
    assert shape(parts) == [[0, 3], [1, 2]]
    # Every record exactly once, each partition's records in their order.
    assert sorted(tp.partition for part in parts for tp in part) == [0, 1, 2, 3]
    for part in parts:
        for tp, records in part.items():
            assert records is fetch[tp]


def test_each_part_carries_at_least_min_bytes() -> None:
    fetch = batch({0: [100], 1: [100], 2: [100], 3: [100]})
    assert len(split_by_partition(fetch, most=4, min_bytes=100)) == 4
    assert len(split_by_partition(fetch, most=4, min_bytes=200)) == 2
    assert len(split_by_partition(fetch, most=4, min_bytes=250)) == 1


def test_one_part_when_not_allowed_or_not_possible() -> None:
    fetch = batch({0: [1000], 1: [1000]})
    assert split_by_partition(fetch, most=1, min_bytes=1) == [fetch]
    single = batch({0: [1000, 1000, 1000]})
    assert split_by_partition(single, most=2, min_bytes=1) == [single]
