"""Generated client frames against a live gateway: thousands of valid frames (from the JSON
Schemas in schemas/json, with hypothesis-jsonschema) and invalid ones (valid frames mutated,
arbitrary JSON, text that is not JSON, binary frames).

What must hold, for every batch of frames:
- every frame with a readable ``id`` (a string of 1..64 characters) is answered exactly once
  (``ack``, ``error`` or ``pong`` with that id), and never with ``internal``;
- the connection stays open (nothing here is a reason to close: frames stay under
  ``max_frame_bytes`` and the gateway's rate limit is raised so the fuzzer measures parsing,
  not the limiter; the one frame over the size limit comes last and must close with 1009);
- the gateway's memory is flat: its RSS after the main run is within a generous bound of its
  RSS after a warm-up run (a leak per frame would show over thousands of them; not a timing
  assertion).

``make test`` runs a bounded number of examples (``FUZZ_EXAMPLES``, default 300 batches of
5..25 frames after a warm-up of 100: about 2,300 frames, half a minute); ``make fuzz`` runs
``FUZZ_EXAMPLES=5000`` (about 40,000 frames). A failure prints the batch as generated (no
shrinking: each step would be a round trip through the live system) and the frames left
unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from hypothesis_jsonschema import from_schema
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.integration.harness import ServiceProcess, System, seconds, token, unique, ws_url

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SCHEMA = json.loads((ROOT / "schemas" / "json" / "client-frame.json").read_text())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "300"))
WARM_UP_EXAMPLES = max(EXAMPLES // 3, 20)
MAX_FRAME_BYTES = 65536
ANSWER_TYPES = {"ack", "error", "pong"}
# RSS may grow this much between the warm-up and the end (allocator arenas, caches filling
# up): a leak of a few hundred bytes per frame over thousands of frames still exceeds it.
RSS_GROWTH_FACTOR = 1.25
RSS_GROWTH_SLACK_KIB = 24 * 1024

Frame = dict[str, Any]
# What is sent: a frame object, raw text, or binary.
Outgoing = Frame | str | bytes


def schema_frames() -> st.SearchStrategy[Frame]:
    """Every client frame type, generated from its JSON Schema (the generated file); built
    once, since turning a schema into a strategy is the expensive part."""
    defs = CLIENT_SCHEMA.get("$defs", {})
    branches = [from_schema({**branch, "$defs": defs}) for branch in CLIENT_SCHEMA["oneOf"]]
    # Every branch is an object schema: its values are frames.
    return cast(st.SearchStrategy[Frame], st.one_of(branches))


SCHEMA_FRAMES = schema_frames()
# Readable ids as clients write them, and the ones the server cannot read (too long, empty).
REQUEST_IDS = st.text(min_size=1, max_size=64)
UNREADABLE_IDS = st.text(min_size=65, max_size=80) | st.just("") | st.integers() | st.none()


@st.composite
def valid_frames(draw: st.DrawFn) -> Frame:
    """A valid frame, most of them with a request id (the schema makes ids optional, and a
    generator draws optional fields rarely: the answers to ids are what is checked)."""
    frame = dict(draw(SCHEMA_FRAMES))
    if draw(st.integers(0, 9)) < 8:
        frame["id"] = draw(REQUEST_IDS)
    return frame


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_frames(draw: st.DrawFn) -> Frame:
    """A valid frame with one thing broken: a field dropped, retyped or added, or its type."""
    frame = draw(valid_frames())
    keys = sorted(frame)
    operation = draw(st.sampled_from(["drop", "retype", "add", "type", "id"]))
    if operation == "drop":
        frame.pop(draw(st.sampled_from(keys)))
    elif operation == "retype":
        frame[draw(st.sampled_from(keys))] = draw(json_values)
    elif operation == "add":
        frame[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
    elif operation == "type":
        frame["type"] = draw(st.text(max_size=20) | json_values)
    else:
        frame["id"] = draw(UNREADABLE_IDS)
    return frame


#: Half valid frames, the rest invalid in every way a client can be.
OUTGOING: st.SearchStrategy[Outgoing] = st.one_of(
    valid_frames(),
    valid_frames(),
    mutated_frames(),
    st.dictionaries(st.text(max_size=12), json_values, max_size=5),
    json_values.map(lambda value: json.dumps(value)),
    st.text(max_size=200),
    st.binary(max_size=200),
)


@dataclass
class Fuzzer:
    """One connection of one user, its answers counted by request id."""

    loop: asyncio.AbstractEventLoop
    gateway: ServiceProcess
    url: str
    user: str
    ws: ClientConnection | None = None
    answers: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    sent_ids: set[str] = field(default_factory=set)
    frames_sent: int = 0
    next_id: int = 0
    _reader: asyncio.Task[None] | None = None

    async def open(self) -> None:
        headers = {"Authorization": f"Bearer {token(self.user, ttl_s=3600)}"}
        self.ws = await connect(self.url, additional_headers=headers, max_size=None)
        hello = orjson.loads(await asyncio.wait_for(self.ws.recv(), seconds(10)))
        assert hello["type"] == "hello"
        assert hello["limits"]["max_frame_bytes"] == MAX_FRAME_BYTES
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            async for message in self.ws:
                frame = orjson.loads(message)
                if frame.get("type") in ANSWER_TYPES and frame.get("id") is not None:
                    self.answers[frame["id"]] += 1
                if frame.get("type") == "error":
                    self.codes[frame["code"]] += 1

    def prepare(self, item: Outgoing) -> tuple[str | bytes, str | None] | None:
        """The wire form of ``item`` and the id it must be answered with (None: no answer
        to wait for). A readable id is made unique, keeping what was generated after a
        prefix; None when the item cannot be encoded or would exceed the frame limit."""
        if isinstance(item, bytes):
            return item, None
        if isinstance(item, str):
            wire: str | bytes = item
            request_id = None
        else:
            frame = dict(item)
            request_id = None
            if isinstance(frame.get("id"), str) and 1 <= len(frame["id"]) <= 64:
                self.next_id += 1
                prefix = f"fz{self.next_id}:"
                request_id = (prefix + frame["id"])[:64]
                frame["id"] = request_id
            wire = json.dumps(frame, ensure_ascii=self.next_id % 2 == 0)
        try:
            size = len(wire.encode() if isinstance(wire, str) else wire)
        except UnicodeEncodeError:
            # A lone surrogate cannot travel as UTF-8 text; escaped, it still can.
            if isinstance(item, str):
                return None
            wire = json.dumps(frame)
            size = len(wire)
        if size > MAX_FRAME_BYTES:
            return None
        return wire, request_id

    async def exchange(self, batch: list[Outgoing]) -> None:
        """Send a batch, wait for every answer due, check the connection is still open."""
        assert self.ws is not None
        due: dict[str, str | bytes] = {}
        for item in batch:
            prepared = self.prepare(item)
            if prepared is None:
                continue
            wire, request_id = prepared
            await self.ws.send(wire)
            self.frames_sent += 1
            if request_id is not None:
                due[request_id] = wire
                self.sent_ids.add(request_id)
        deadline = time.monotonic() + seconds(20)
        while any(self.answers[request_id] == 0 for request_id in due):
            if self.ws.close_code is not None:
                raise AssertionError(f"connection closed: {self.ws.close_code}")
            if time.monotonic() > deadline:
                missing = {i: frame for i, frame in due.items() if self.answers[i] == 0}
                raise AssertionError(f"no answer to {missing}")
            await asyncio.sleep(0.01)
        assert self.ws.close_code is None, f"connection closed: {self.ws.close_code}"
        assert self.codes["internal"] == 0, "a frame was answered with internal"
        repeated = {request_id: n for request_id, n in self.answers.items() if n > 1}
        assert not repeated, f"answered more than once: {repeated}"

    def rss_kib(self) -> int:
        """The gateway process's resident memory, from /proc."""
        assert self.gateway.process is not None
        status = Path(f"/proc/{self.gateway.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])


@pytest.fixture(scope="module")
def fuzzer(system: System) -> Iterator[Fuzzer]:
    """A gateway of its own with its frame rate limit out of the way, and one connection.

    Hypothesis drives a synchronous function, so this module runs its own event loop (the
    session's loop is idle between tests)."""
    gateway = system.extra_gateway("gw-fuzz")
    gateway.env.update(RATE_PER_S="1000000", RATE_BURST="1000000", LOG_LEVEL="WARNING")
    loop = asyncio.new_event_loop()
    gateway.start()
    try:
        loop.run_until_complete(gateway.wait_ready())
        fuzz = Fuzzer(loop=loop, gateway=gateway, url=ws_url(gateway.port), user=unique("fuzz"))
        loop.run_until_complete(fuzz.open())
        yield fuzz
        if fuzz.ws is not None:
            loop.run_until_complete(fuzz.ws.close())
    finally:
        gateway.stop()
        loop.close()


def run(fuzz: Fuzzer, examples: int) -> None:
    """``examples`` generated batches through ``fuzz``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        # No shrinking: every step would be another round trip through the live system. The
        # failing batch is printed as generated.
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )
    @given(batch=st.lists(OUTGOING, min_size=5, max_size=25))
    def batch_is_answered(batch: list[Outgoing]) -> None:
        fuzz.loop.run_until_complete(fuzz.exchange(batch))

    batch_is_answered()


def test_generated_frames_are_each_answered_once_and_never_leak(fuzzer: Fuzzer) -> None:
    run(fuzzer, WARM_UP_EXAMPLES)
    warm_kib = fuzzer.rss_kib()
    sent_before = fuzzer.frames_sent
    run(fuzzer, EXAMPLES)
    after_kib = fuzzer.rss_kib()
    assert fuzzer.frames_sent - sent_before >= EXAMPLES * 5
    assert len(fuzzer.sent_ids) == sum(fuzzer.answers[i] for i in fuzzer.sent_ids)
    assert after_kib <= warm_kib * RSS_GROWTH_FACTOR + RSS_GROWTH_SLACK_KIB, (
        f"gateway RSS grew from {warm_kib} KiB to {after_kib} KiB"
    )
    # Only now, the one frame the protocol closes for: too big to read.
    assert fuzzer.ws is not None
    fuzzer.loop.run_until_complete(fuzzer.ws.send("x" * (MAX_FRAME_BYTES + 1)))
    fuzzer.loop.run_until_complete(asyncio.wait_for(fuzzer.ws.wait_closed(), seconds(10)))
    assert fuzzer.ws.close_code == 1009
