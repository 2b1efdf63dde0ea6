"""Who may open a connection: handshakes per client address, connections per gateway and per
user. Pure: the clock, the address and the limits are passed in.

- Handshakes: a token bucket per client address; an address over it gets 429 before the
  upgrade. Buckets that have refilled are forgotten, so memory follows the addresses active in
  the last few seconds, and a hard bound caps even that.
- Gateway: at most ``connection_cap`` connections; the next upgrade gets 503. The cap stays
  below what the process's file descriptor limit allows.
- User: at most ``per_user`` connections of one user on this gateway; a newer one closes the
  oldest (close code 4010), so the device in the user's hand always works.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: File descriptors kept for everything but client sockets: Kafka and HTTP client connections,
#: log files, the event loop, listening sockets, handshakes in progress.
FD_RESERVE = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def connection_cap(*, configured: int, fd_limit: int, reserve: int = FD_RESERVE) -> int:
    """The most connections to accept: the configured number, or fewer when the file
    descriptor limit (each connection holds one) leaves less after ``reserve``."""
    return max(min(configured, fd_limit - reserve), 0)


@dataclass(slots=True)
class HandshakeLimiter:
    """A token bucket per client address: ``rate_per_s`` handshakes a second, ``burst`` at once.

    At most ``max_sources`` addresses are tracked; past that the least recently seen is
    forgotten (it starts again with a full bucket: the bound protects memory, and an attacker
    with that many addresses is past what a per-address limit can stop anyway).
    """

    rate_per_s: float
    burst: float
    max_sources: int
    # address -> (tokens, time of last update); least recently updated first.
    _buckets: OrderedDict[str, tuple[float, float]] = field(init=False, default_factory=OrderedDict)

    def check(self, source: str, now: float) -> float | None:
        """Spend a token for a handshake from ``source`` at ``now`` (seconds, monotonic).

        Returns:
            None when allowed, else the seconds until a token is back (for ``Retry-After``).
        """
        self._forget_refilled(now)
        tokens, updated = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - updated) * self.rate_per_s)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[source] = (tokens, now)
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return None if allowed else (1 - tokens) / self.rate_per_s

    def _forget_refilled(self, now: float) -> None:
        """Drop buckets idle long enough to be full again: forgetting them changes nothing."""
        refill_s = self.burst / self.rate_per_s
        while self._buckets:
            _, (_, updated) = next(iter(self._buckets.items()))
            if now - updated < refill_s:
                return
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``127.0.0.1`` and the like as networks (a bare address is a /32 or /128).

    Raises:
        ValueError: an entry is not an address or network.
    """
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries)


def client_address(peer: str, forwarded_for: str | None, trusted_proxies: Sequence[Network]) -> str:
    """The address a handshake is counted against.

    The peer itself, unless it is a trusted proxy: then the right-most ``X-Forwarded-For``
    entry that is not a trusted proxy (entries left of it could be written by the client).
    """
    if forwarded_for is None or not _trusted(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted_proxies):
            return hop
    return hops[0] if hops else peer


def _trusted(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
