"""What erasing a user costs: ``python -m bench.erasure [--groups 10 --group-size 20 ...]``.

Starts the bench's own services (bench/system.py, a fresh database and topic prefix), builds a
user's footprint through real WebSocket clients — messages in groups and direct
conversations, the others' messages around them, reactions — then runs the erase-user command
(:func:`services.runtime.erasure.command.erase_user`) and prints, as JSON, when each service's
report arrived after the request was published, and what each changed. Not part of ``make
bench``'s default list (erasures are rare; their cost is a bound to know, not a rate to keep).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.client import token
from bench.system import System
from services.runtime.erasure.command import erase_user
from services.runtime.settings import KafkaSettings


class _Client:
    """A connection that sends requests and waits for their answers, many in flight."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, user: str) -> _Client:
        ws = await connect(url, additional_headers={"Authorization": f"Bearer {token(user)}"})
        await ws.recv()  # hello
        return cls(ws)

    async def _read(self) -> None:
        async for raw in self._ws:
            frame = orjson.loads(raw)
            waiting = self._answers.pop(str(frame.get("id")), None)
            if waiting is not None and not waiting.done():
                waiting.set_result(frame)

    async def all(self, frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send every frame, then wait for every answer (each must be an ack)."""
        futures = []
        for frame in frames:
            request_id = uuid.uuid4().hex
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._answers[request_id] = future
            futures.append(future)
            await self._ws.send(orjson.dumps({**frame, "id": request_id}).decode())
        answers = await asyncio.wait_for(asyncio.gather(*futures), 300)
        refused = [a for a in answers if a["type"] != "ack"]
        if refused:
            raise RuntimeError(f"refused: {refused[:3]}")
        return list(answers)

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()


def _say(conversation: str, key: str, body: str) -> dict[str, Any]:
    return {
        "type": "message.send",
        "conversation_id": conversation,
        "client_msg_id": key,
        "kind": "text",
        "body": body,
    }


async def _footprint(system: System, args: argparse.Namespace, user: str) -> dict[str, int]:
    """Build the user's conversations and messages; returns what was built."""
    me = await _Client.open(system.ws_url, user)
    others: dict[str, _Client] = {}
    messages = 0
    try:
        for g in range(args.groups):
            members = [f"member-{g}-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.group_size - 1)]
            for member in members:
                others[member] = await _Client.open(system.ws_url, member)
            (created,) = await me.all(
                [
                    {
                        "type": "conversation.create",
                        "kind": "group",
                        "title": f"g{g}",
                        "members": members,
                    }
                ]
            )
            group = created["conversation"]["id"]
            mine = await me.all(
                [_say(group, f"g{g}-{i}", f"my message {i}") for i in range(args.group_messages)]
            )
            messages += len(mine)
            for member in members:
                theirs = await others[member].all(
                    [_say(group, f"{member}-{i}", "theirs") for i in range(args.others_messages)]
                )
                await me.all(
                    [
                        {
                            "type": "reaction.set",
                            "conversation_id": group,
                            "message_id": theirs[0]["message"]["id"],
                            "emoji": "👍",
                            "on": True,
                        }
                    ]
                )
        for d in range(args.directs):
            contact = f"contact-{d}-{uuid.uuid4().hex[:6]}"
            (first,) = await me.all(
                [
                    {
                        "type": "message.send",
                        "to": contact,
                        "client_msg_id": f"d{d}-0",
                        "kind": "text",
                        "body": "hello 0",
                    }
                ]
            )
            conversation = first["message"]["conversation_id"]
            rest = await me.all(
                [
                    _say(conversation, f"d{d}-{i}", f"hello {i}")
                    for i in range(1, args.direct_messages)
                ]
            )
            messages += 1 + len(rest)
    finally:
        await me.close()
        for client in others.values():
            await client.close()
    return {"messages": messages, "groups": args.groups, "directs": args.directs}


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    system = await System.start(
        log_dir=Path(tempfile.mkdtemp(prefix="bench-erasure-")), extra_env={}
    )
    try:
        user = f"erased-{uuid.uuid4().hex[:8]}"
        built = await _footprint(system, args, user)
        settings = KafkaSettings(
            kafka_bootstrap_servers=system.kafka_bootstrap,
            kafka_topic_prefix=system.topic_prefix,
        )
        started = time.perf_counter()
        arrivals: dict[str, float] = {}
        lines: list[dict[str, Any]] = []

        def emit(line: dict[str, Any]) -> None:
            lines.append(line)
            if "service" in line:
                step = f"{line['service']}:{line['step']}"
                arrivals[step] = round(time.perf_counter() - started, 3)

        done = await erase_user(
            settings,
            user,
            services=("chat", "presence", "notifier"),
            timeout_s=args.timeout_s,
            wait=True,
            emit=emit,
        )
        return {
            "built": built,
            "done": done,
            "seconds_to_done": round(time.perf_counter() - started, 3),
            "report_arrived_after_s": arrivals,
            "changes": lines[-1].get("changes"),
        }
    finally:
        await system.stop(drop_database=True)


def main(argv: list[str] | None = None) -> int:
    """Build a footprint, erase it, print the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.erasure", description=__doc__)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--group-size", type=int, default=20)
    parser.add_argument("--group-messages", type=int, default=60, help="the user's, per group")
    parser.add_argument("--others-messages", type=int, default=2, help="each member's, per group")
    parser.add_argument("--directs", type=int, default=40)
    parser.add_argument("--direct-messages", type=int, default=10)
    parser.add_argument("--timeout-s", type=float, default=600.0)
    args = parser.parse_args(argv)
    result = asyncio.run(_run(args))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0 if result["done"] else 1


if __name__ == "__main__":
    sys.exit(main())
