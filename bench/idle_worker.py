"""A helper process of the idle scenario: opens idle connections and holds them until told.

One process may hold only as many sockets as its open-file limit allows (20,000 on machines
where it cannot be raised), so the idle scenario spreads its connections over several of these
workers. Protocol on stdout, one line each: ``started`` (imports done), ``progress N``, then
``ready N SECONDS`` once all are open (or ``failed REASON``). The worker holds its connections
until its stdin closes, then drops them.

    python -m bench.idle_worker URL FIRST COUNT PER_IP
"""

from __future__ import annotations

import asyncio
import sys
import time

import uvloop

from bench.client import connect_ws
from bench.system import raise_nofile


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def hold(url: str, first: int, count: int, per_ip: int) -> None:
    """Open ``count`` connections of users ``idle-<first>..``, report, wait for stdin EOF."""
    gate = asyncio.Semaphore(100)
    sockets = []
    opened = 0

    async def one(number: int) -> None:
        nonlocal opened
        ip = f"127.0.0.{2 + number // per_ip}"
        async with gate:
            sockets.append(await connect_ws(url, f"idle-{number}", local_ip=ip, ping=False))
        opened += 1
        if opened % 500 == 0:
            _say(f"progress {opened}")

    _say("started")
    began = time.perf_counter()
    try:
        await asyncio.gather(*(one(n) for n in range(first, first + count)))
    except ConnectionError as exc:
        _say(f"failed {exc}")
        return
    _say(f"ready {opened} {time.perf_counter() - began:.3f}")
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in sockets:
        if ws.transport is not None:
            ws.transport.abort()


def main() -> None:
    """Entry point."""
    raise_nofile()
    url, first, count, per_ip = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    uvloop.run(hold(url, first, count, per_ip))


if __name__ == "__main__":
    main()
