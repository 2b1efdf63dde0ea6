"""Helpers of the group, list, history and search tests: frames, paging, replaying a stream."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from tests.integration.harness import Client, Frame, System, seconds

T = TypeVar("T")


async def ok(client: Client, frame: Frame) -> Frame:
    """Send a request that must be acknowledged; returns the ack."""
    answer = await client.request_within_rate(frame)
    assert answer["type"] == "ack", (frame["type"], answer)
    return answer


async def refused(client: Client, frame: Frame) -> str:
    """Send a request that must be refused; returns the error code."""
    answer = await client.request_within_rate(frame)
    assert answer["type"] == "error", (frame["type"], answer)
    code: str = answer["code"]
    return code


async def create_group(client: Client, title: str, members: list[str]) -> dict[str, Any]:
    """Create a group as ``client``'s user; returns the conversation of the ack."""
    ack = await ok(
        client, {"type": "conversation.create", "kind": "group", "title": title, "members": members}
    )
    conversation: dict[str, Any] = ack["conversation"]
    return conversation


def say(conversation_id: str, key: str, body: str, **extra: Any) -> Frame:
    """A message.send frame to a conversation."""
    return {
        "type": "message.send",
        "conversation_id": conversation_id,
        "client_msg_id": key,
        "kind": "text",
        "body": body,
        **extra,
    }


def updated(conversation_id: str) -> Callable[[Frame], bool]:
    """Predicate: a conversation.updated frame of this conversation."""
    return lambda f: (
        f.get("type") == "conversation.updated" and (f["conversation"]["id"] == conversation_id)
    )


def member_ids(conversation: dict[str, Any]) -> set[str]:
    return {m["user_id"] for m in conversation["members"]}


def roles(conversation: dict[str, Any]) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in conversation["members"]}


async def sync_all(client: Client, limit: int = 200) -> list[Frame]:
    """Every frame of the user's chat stream, from the beginning, page by page."""
    events: list[Frame] = []
    cursor: dict[str, int] = {}
    while True:
        page = await client.request_within_rate({"type": "sync", "cursor": cursor, "limit": limit})
        assert page["type"] == "ack", page
        # Sync also serves the notifications stream (the notifier's).
        events += [event for event in page["events"] if event["stream"] == "chat"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return events


async def list_all(client: Client, limit: int = 100) -> list[dict[str, Any]]:
    """Every conversation of the user's list, page by page."""
    found: list[dict[str, Any]] = []
    frame: Frame = {"type": "conversations.list", "limit": limit}
    while True:
        page = await ok(client, frame)
        found += page["conversations"]
        if not page["has_more"]:
            return found
        frame = {**frame, "before": page["cursor"]}


def replay(events: list[Frame]) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """What a client rebuilds from its stream: conversations (from conversation.updated) and
    messages by id (message.new, superseded by message.updated). Asserts the stream's seqs are
    1, 2, 3, ... with nothing twice."""
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    conversations: dict[str, dict[str, Any]] = {}
    messages: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["type"] == "conversation.updated":
            conversations[event["conversation"]["id"]] = event["conversation"]
        elif event["type"] == "message.new":
            assert event["message"]["id"] not in messages, "a message.new twice"
            messages[event["message"]["id"]] = event["message"]
        elif event["type"] == "message.updated":
            messages[event["message"]["id"]] = event["message"]
    return conversations, messages


async def stored_members(system: System, conversation_id: str) -> dict[str, str]:
    """user id -> role, as chat stores them."""
    conn = await asyncpg.connect(system.database_url)
    try:
        rows = await conn.fetch(
            "SELECT user_id, role FROM chat.members WHERE conversation_id = $1", conversation_id
        )
    finally:
        await conn.close()
    return {row["user_id"]: row["role"] for row in rows}


async def wait_presence_members(system: System, conversation_id: str, expected: set[str]) -> None:
    """Poll until presence has applied the conversation's membership fact."""
    conn = await asyncpg.connect(system.database_url)
    try:
        await poll(
            lambda: conn.fetch(
                "SELECT user_id FROM presence.memberships WHERE conversation_id = $1",
                conversation_id,
            ),
            lambda rows: {row["user_id"] for row in rows} == expected,
        )
    finally:
        await conn.close()


async def poll(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = seconds(10)
) -> T:
    """Call ``read()`` until ``done(result)``; returns the result (AssertionError on timeout)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await read()
        if done(result):
            return result
        assert asyncio.get_running_loop().time() < deadline, f"still {result!r}"
        await asyncio.sleep(0.05)
