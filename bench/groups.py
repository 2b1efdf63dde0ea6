"""Scenarios of groups and conversation reads (issue 9), from the outside like every other one.

groupfanout  one message to a group of 256 members, every member connected: time from the send
             to the message.new of every member, and to the last one
reads        conversations.list as a user in 1,000 conversations, history of busy
             conversations, search over 1,000,000 stored messages: request to answer over the
             WebSocket (gateway -> chat's internal HTTP -> Postgres under RLS), one at a time.
             The messages are written with COPY (bench/chatdata.py), not sent.
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson

from bench.chatdata import DataSizes, generate
from bench.client import BODY, Frame, LoadClient
from bench.progress import Progress, bar
from bench.stats import summarize
from bench.system import BenchError, CpuMeter, System

#: Untimed requests of each kind first (connections, caches and plans warm up).
_WARM_UP = 10


async def group_fanout(
    system: System,
    meter: CpuMeter,
    progress: Progress,
    *,
    members: int,
    messages: int,
    rate: float,
    settle_s: float,
) -> dict[str, object]:
    """A member of a ``members``-strong group sends ``messages`` at ``rate``; every member has
    one connection open. Latency: the send to each member's ``message.new``."""
    arrivals: dict[str, list[float]] = {}

    def on_frame(client: LoadClient, frame: Frame, now: float) -> None:
        if frame["type"] == "message.new":
            arrivals.setdefault(frame["message"]["client_msg_id"], []).append(now)

    tag = f"grp-{int(time.time())}"
    clients: list[LoadClient] = []
    for n in range(members):
        clients.append(await LoadClient.open(system.ws_url, n, f"{tag}-{n:03d}", on_frame))
        progress.update(f"group members {bar((n + 1) / members)} {n + 1}/{members}")
    creator = clients[0]
    answer = await creator.request(
        {
            "type": "conversation.create",
            "kind": "group",
            "title": "bench",
            "members": [client.user_id for client in clients[1:]],
        },
        timeout_s=60.0,
    )
    if answer.get("type") != "ack":
        raise BenchError(f"conversation.create refused: {answer.get('code')}")
    group = answer["conversation"]["id"]
    # Every member connecting told the others (presence): let that traffic pass first.
    progress.update(f"group of {members}: settling {settle_s:.0f} s", force=True)
    await asyncio.sleep(settle_s)
    sender = clients[1]
    sent_at: dict[str, float] = {}

    async def send_all(count: int, label: str) -> list[str]:
        keys = []
        start = time.perf_counter()
        for k in range(count):
            delay = start + k / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            key = f"{label}-{k}"
            sent_at[key] = time.perf_counter()
            frame = {
                "type": "message.send",
                "conversation_id": group,
                "client_msg_id": key,
                "kind": "text",
                "body": BODY,
            }
            await sender.ws.send(orjson.dumps(frame).decode())
            keys.append(key)
            progress.update(f"{label} {bar((k + 1) / count)} {k + 1}/{count}")
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            if all(len(arrivals.get(key, ())) >= members for key in keys):
                break
            await asyncio.sleep(0.05)
        return keys

    await send_all(5, "warm")
    with meter.measure() as cpu:
        keys = await send_all(messages, "fan")
    every: list[float] = []
    last: list[float] = []
    incomplete = 0
    for key in keys:
        times = arrivals.get(key, [])
        every.extend(t - sent_at[key] for t in times)
        if len(times) < members:
            incomplete += 1
        else:
            last.append(max(times) - sent_at[key])
    await asyncio.gather(*(client.close() for client in clients))
    all_members, last_member = summarize(every), summarize(last)
    progress.done(
        f"group fan-out to {members}: p50 {all_members['p50_ms']:.1f} ms, last member p50"
        f" {last_member['p50_ms']:.1f} / p99 {last_member['p99_ms']:.1f} ms"
    )
    return {
        "members": members,
        "messages": len(keys),
        "rate": rate,
        "every_member": all_members,
        "last_member": last_member,
        "incomplete": incomplete,
        "cpu": cpu.as_json(),
    }


async def reads(
    system: System,
    meter: CpuMeter,
    progress: Progress,
    *,
    data: DataSizes,
    requests: int,
) -> dict[str, object]:
    """Write the data set with COPY, then time ``requests`` of each read, one at a time."""
    progress.update(f"writing {data.messages:,} messages with COPY", force=True)
    conn = await asyncpg.connect(system.database_url)
    try:
        began = time.monotonic()
        dataset = await generate(conn, data)
        load_s = time.monotonic() - began
        size = await conn.fetchval("SELECT pg_total_relation_size('chat.messages')")
    finally:
        await conn.close()
    heavy = await LoadClient.open(system.ws_url, 0, dataset.heavy_user, _ignore)
    busy = dataset.busy or []
    if not busy:
        raise BenchError("the data set has no busy conversation; raise --read-messages")
    readers = {
        user: await LoadClient.open(system.ws_url, n, user, _ignore)
        for n, user in enumerate({member for _, member, _ in busy} | set(dataset.searchers))
    }
    results: dict[str, object] = {
        "messages": dataset.messages,
        "conversations": dataset.conversations,
        "heavy_user_conversations": data.heavy_conversations,
        "load_s": round(load_s, 1),
        "messages_table_mib": round(size / 2**20, 1),
        "requests": requests,
    }
    cursors: list[str] = []

    async def list_page(k: int) -> Frame:
        frame: Frame = {"type": "conversations.list", "limit": 30}
        if k % 3 and cursors:
            frame["before"] = cursors[k % len(cursors)]
        answer = await heavy.request(frame)
        if answer.get("cursor"):
            cursors.append(answer["cursor"])
        return answer

    async def history_page(k: int) -> Frame:
        conversation, member, last_seq = busy[k % len(busy)]
        before = max(2, last_seq - (k * 37) % last_seq)
        return await readers[member].request(
            {"type": "history", "conversation_id": conversation, "before_seq": before}
        )

    async def search_once(k: int) -> Frame:
        user = dataset.searchers[k % len(dataset.searchers)]
        query = dataset.queries[k % len(dataset.queries)]
        return await readers[user].request({"type": "search", "query": query, "limit": 20})

    async def search_heavy(k: int) -> Frame:
        query = dataset.queries[k % len(dataset.queries)]
        return await heavy.request({"type": "search", "query": query, "limit": 20})

    # The heavy user's searches are reported apart: mixed in at one in fifty-one, as before,
    # they made the p99 of everyone's searches theirs (docs/conversations.md).
    scenarios = (
        ("list", list_page),
        ("history", history_page),
        ("search", search_once),
        ("search_heavy", search_heavy),
    )
    for name, read in scenarios:
        for k in range(_WARM_UP):
            await read(requests + k)
        samples: list[float] = []
        refused = 0
        with meter.measure() as cpu:
            for k in range(requests):
                started = time.perf_counter()
                answer = await read(k)
                if answer.get("type") != "ack":
                    refused += 1
                    continue
                samples.append(time.perf_counter() - started)
                progress.update(f"{name} {bar((k + 1) / requests)} {k + 1}/{requests}")
        summary = summarize(samples)
        results[name] = {**summary, "refused": refused, "cpu": cpu.as_json()}
        progress.done(f"{name}: p50 {summary['p50_ms']:.1f} ms, p99 {summary['p99_ms']:.1f} ms")
    await asyncio.gather(heavy.close(), *(client.close() for client in readers.values()))
    return results


def _ignore(client: LoadClient, frame: Frame, now: float) -> None:
    """Live frames are not what the read scenarios measure."""
