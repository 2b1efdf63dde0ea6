"""Admission limits without I/O: the handshake bucket per address (with a fake clock), its
memory bound, the connection cap under the file descriptor limit, the client address behind
trusted proxies, and which of a user's sessions make room."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.gateway.domain.limits import (
    FD_RESERVE,
    HandshakeLimiter,
    client_address,
    connection_cap,
    parse_networks,
)
from services.gateway.domain.registry import Registry


def limiter(rate: float = 1.0, burst: float = 3, max_sources: int = 1000) -> HandshakeLimiter:
    return HandshakeLimiter(rate_per_s=rate, burst=burst, max_sources=max_sources)


def test_a_burst_passes_then_the_rate_holds_with_a_retry_hint() -> None:
    limits = limiter(rate=2.0, burst=3)
    assert [limits.check("1.2.3.4", 0.0) for _ in range(3)] == [None, None, None]
    wait = limits.check("1.2.3.4", 0.0)
    assert wait == pytest.approx(0.5)
    # Half a second later one token is back, and only one.
    assert limits.check("1.2.3.4", 0.5) is None
    assert limits.check("1.2.3.4", 0.5) is not None


def test_addresses_have_buckets_of_their_own() -> None:
    limits = limiter(burst=1)
    assert limits.check("10.0.0.1", 0.0) is None
    assert limits.check("10.0.0.1", 0.0) is not None
    assert limits.check("10.0.0.2", 0.0) is None


def test_a_refused_handshake_spends_nothing_and_refusals_do_not_extend_the_wait() -> None:
    limits = limiter(rate=1.0, burst=1)
    assert limits.check("a", 0.0) is None
    for t in (0.1, 0.2, 0.3):
        assert limits.check("a", t) is not None
    assert limits.check("a", 1.0) is None


def test_refilled_buckets_are_forgotten() -> None:
    limits = limiter(rate=1.0, burst=3)
    for n in range(100):
        limits.check(f"10.0.{n}.1", 0.0)
    assert len(limits) == 100
    # After burst / rate seconds every bucket is full again: nothing worth keeping.
    limits.check("10.9.9.9", 3.0)
    assert len(limits) == 1


def test_memory_is_bounded_whatever_the_number_of_addresses() -> None:
    limits = limiter(rate=1.0, burst=3, max_sources=50)
    for n in range(10_000):
        limits.check(f"addr-{n}", 0.0)
        assert len(limits) <= 50


@pytest.mark.parametrize(
    ("configured", "fd_limit", "cap"),
    [
        (10_000, 1_048_576, 10_000),
        (10_000, 1024, 1024 - FD_RESERVE),
        (10, 300, 10),
        (100, 300, 300 - FD_RESERVE),
        (100, 100, 0),
    ],
)
def test_the_connection_cap_stays_below_the_file_descriptor_limit(
    configured: int, fd_limit: int, cap: int
) -> None:
    assert connection_cap(configured=configured, fd_limit=fd_limit) == cap


PROXIES = parse_networks(["10.0.0.0/8", "192.168.1.7"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        # No proxy trusted: the peer, whatever the header claims.
        ("203.0.113.9", "198.51.100.1", "203.0.113.9"),
        ("203.0.113.9", None, "203.0.113.9"),
        # A trusted proxy: the right-most address it did not add itself.
        ("10.1.2.3", "198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "6.6.6.6, 198.51.100.1", "198.51.100.1"),
        ("10.1.2.3", "198.51.100.1, 192.168.1.7", "198.51.100.1"),
        ("192.168.1.7", " 198.51.100.1 ", "198.51.100.1"),
        # Only proxies in the header: the first of them.
        ("10.1.2.3", "10.9.9.9", "10.9.9.9"),
        ("10.1.2.3", "", "10.1.2.3"),
        # Garbage is an untrusted "address" of its own (counted, never trusted).
        ("10.1.2.3", "not-an-ip", "not-an-ip"),
    ],
)
def test_client_address_behind_trusted_proxies(
    peer: str, forwarded: str | None, client: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == client


def test_untrusted_proxies_cannot_be_listed() -> None:
    with pytest.raises(ValueError):
        parse_networks(["10.0.0.0/33"])


@dataclass(frozen=True)
class FakeSession:
    user_id: str
    connection_id: str


def test_the_oldest_sessions_of_a_user_beyond_the_limit_make_room() -> None:
    registry: Registry[FakeSession] = Registry(partitions=4)
    sessions = [FakeSession("u", f"c{n}") for n in range(5)]
    for session in sessions:
        registry.add(session)
    registry.add(FakeSession("other", "x"))
    assert registry.oldest_beyond("u", 3) == sessions[:2]
    assert registry.oldest_beyond("u", 5) == []
    assert registry.oldest_beyond("nobody", 1) == []
    registry.remove(sessions[0])
    assert registry.oldest_beyond("u", 3) == sessions[1:2]
