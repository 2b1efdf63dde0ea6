"""Kafka's default partitioner (murmur2), so a gateway knows where a user's frames land.

Producers (aiokafka, the Java client, librdkafka in its ``murmur2_random`` mode) place a keyed
record in ``toPositive(murmur2(key)) % partitions``; the gateway must compute exactly that to
tail only its users' partitions. Pure functions, no I/O.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence

from murmurhash2 import murmurhash2

_SEED = 0x9747B28C


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data`` as a signed int, as ``Utils.murmur2`` returns it.

    The ``murmurhash2`` wheel (Rust) with Kafka's seed: a job alert to thousands of new users
    computes this for each of their keys (1.8 us a key in Python, 0.25 here).
    """
    h = murmurhash2(data, _SEED)
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a keyed record.

    Args:
        key: the record key as bytes (user ids are UTF-8 encoded).
        partitions: the topic's partition count.

    Returns:
        An index in ``range(partitions)``.
    """
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=65536)
def cached_partition_for_key(key: bytes, partitions: int) -> int:
    """:func:`partition_for_key`, memoised: producers see the same user and conversation ids
    over and over."""
    return partition_for_key(key, partitions)


def default_partitioner(
    key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
) -> int:
    """aiokafka's ``partitioner`` contract with Kafka's default placement, memoised (aiokafka's
    own computes murmur2 in pure Python on every send)."""
    if key is None:
        return random.choice(available or all_partitions)
    return all_partitions[cached_partition_for_key(key, len(all_partitions))]
