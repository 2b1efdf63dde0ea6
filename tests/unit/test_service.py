"""What a service's description asks of the runtime, before anything runs."""

from __future__ import annotations

from services.chat.app import SERVICE as CHAT
from services.presence.app import SERVICE as PRESENCE
from services.runtime.migrations import runtime_parts
from services.runtime.service import Kit, Service
from services.runtime.settings import ServiceSettings
from services.runtime.streams import Stream


async def nothing(kit: Kit[ServiceSettings]) -> None:
    """A service with no parts of its own."""


def test_every_consuming_service_gets_offsets_and_outbox() -> None:
    bare = Service(name="x", schema="x", settings=ServiceSettings, compose=nothing)
    assert bare.runtime_tables == ("offsets", "outbox")


def test_streams_and_dedupe_add_their_tables() -> None:
    service = Service(
        name="notifier",
        schema="notifier",
        settings=ServiceSettings,
        compose=nothing,
        streams=(Stream("notifications", schema="notifier"),),
        inbound_dedupe=True,
    )
    assert service.runtime_tables == ("offsets", "outbox", "streams", "inbound")
    assert set(service.runtime_tables) <= set(runtime_parts())


def test_chat_owns_the_chat_stream_and_presence_none() -> None:
    assert [stream.name for stream in CHAT.streams] == ["chat"]
    assert CHAT.runtime_tables == ("offsets", "outbox", "streams")
    assert PRESENCE.streams == ()
    assert PRESENCE.runtime_tables == ("offsets", "outbox")
