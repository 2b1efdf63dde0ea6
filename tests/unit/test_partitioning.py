"""Our murmur2 partitioner must place keys exactly where Kafka's producers do.

Two references: aiokafka's own ``murmur2``/``DefaultPartitioner`` (what our producers use) and
the Java client's published vectors from Kafka's ``UtilsTest.testMurmur2``.
"""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner, murmur2 as aiokafka_murmur2

from services.runtime.partitioning import default_partitioner, murmur2, partition_for_key

# Kafka's UtilsTest.testMurmur2 (Java signed ints); each one also checked against aiokafka below.
JAVA_VECTORS: list[tuple[bytes, int]] = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"", 275646681),
]

_ALPHABET = "abcXYZ019-_:/ éüß漢字😀\u0000\u07ff\uffff"


def _random_keys(count: int, seed: int) -> list[bytes]:
    """Seeded keys of 0..40 characters, ASCII and multi-byte UTF-8, plus raw random bytes."""
    rng = random.Random(seed)
    keys: list[bytes] = []
    for _ in range(count):
        length = rng.randint(0, 40)
        if rng.random() < 0.5:
            keys.append("".join(rng.choice(_ALPHABET) for _ in range(length)).encode())
        else:
            keys.append(bytes(rng.randrange(256) for _ in range(length)))
    return keys


def _unsigned(value: int) -> int:
    return value & 0xFFFFFFFF


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS)
def test_murmur2_matches_java_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "expected"), JAVA_VECTORS)
def test_java_vectors_agree_with_aiokafka(key: bytes, expected: int) -> None:
    # Guards the vector table itself: aiokafka returns the unsigned form of the same hash.
    assert aiokafka_murmur2(key) == _unsigned(expected)


def test_murmur2_is_signed_32_bit() -> None:
    values = [murmur2(key) for key in _random_keys(500, seed=7)]
    assert all(-(2**31) <= value < 2**31 for value in values)
    assert any(value < 0 for value in values)
    assert any(value >= 0 for value in values)


def test_murmur2_matches_aiokafka_on_random_keys() -> None:
    for key in _random_keys(2000, seed=20240101):
        assert _unsigned(murmur2(key)) == aiokafka_murmur2(key), key


def test_murmur2_matches_aiokafka_on_every_tail_length() -> None:
    # Lengths 0..40 cover every remainder mod 4 many times over.
    rng = random.Random(3)
    for length in range(41):
        key = bytes(rng.randrange(256) for _ in range(length))
        assert _unsigned(murmur2(key)) == aiokafka_murmur2(key), length


@pytest.mark.parametrize("partitions", range(1, 65))
def test_partition_for_key_matches_aiokafka_default_partitioner(partitions: int) -> None:
    partitioner = DefaultPartitioner()
    all_partitions = list(range(partitions))
    for key in _random_keys(150, seed=partitions):
        expected = partitioner(key, all_partitions, all_partitions)
        assert partition_for_key(key, partitions) == expected, (key, partitions)


def test_partition_for_key_user_ids() -> None:
    # User ids are UTF-8 encoded keys; check the encoding path the gateway uses.
    partitioner = DefaultPartitioner()
    for user_id in ["u1", "alice", "bob@example.com", "Zoë", "用户-42", "😀" * 10]:
        key = user_id.encode()
        for partitions in (1, 3, 12, 64):
            expected = partitioner(key, list(range(partitions)), [])
            assert partition_for_key(key, partitions) == expected


def test_partition_for_key_is_in_range_and_handles_negative_hashes() -> None:
    # "foobar" hashes negative in Java; toPositive must mask, not abs().
    assert murmur2(b"foobar") < 0
    assert partition_for_key(b"foobar", 50) == 16
    assert partition_for_key(b"foobar", 50) == (-790332482 & 0x7FFFFFFF) % 50
    for key in _random_keys(300, seed=11):
        assert 0 <= partition_for_key(key, 7) < 7


def test_single_partition_is_always_zero() -> None:
    assert {partition_for_key(key, 1) for key in _random_keys(100, seed=5)} == {0}


@pytest.mark.parametrize("partitions", [1, 8, 16])
def test_default_partitioner_places_like_aiokafka(partitions: int) -> None:
    rng = random.Random(7)
    all_partitions = list(range(partitions))
    for _ in range(300):
        key = rng.randbytes(rng.randint(0, 40))
        expected = DefaultPartitioner()(key, all_partitions, all_partitions)
        # Twice: the second answer comes from the memo.
        assert default_partitioner(key, all_partitions, all_partitions) == expected
        assert default_partitioner(key, all_partitions, all_partitions) == expected


def test_default_partitioner_spreads_keyless_records_over_available_partitions() -> None:
    assert {default_partitioner(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
