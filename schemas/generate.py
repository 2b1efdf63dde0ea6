"""Generate the checked-in JSON Schema files and the AsyncAPI document from the models.

Usage: ``python -m schemas.generate`` rewrites ``schemas/json/`` and ``schemas/asyncapi.json``;
``--check`` writes nothing and exits 1 when a checked-in file is stale (CI runs this).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter

from schemas import events, topics
from schemas.base import WireModel
from schemas.envelope import Envelope
from schemas.frames import CLIENT_FRAME, SERVER_FRAMES

ROOT = Path(__file__).parent
JSON_DIR = ROOT / "json"
ASYNCAPI_PATH = ROOT / "asyncapi.json"

EVENT_MODELS: dict[str, type[BaseModel]] = {
    topics.MESSAGE_SEND: events.MessageSendCommand,
    topics.RECEIPT_POST: events.ReceiptCommand,
    topics.CONVERSATION_CREATE: events.ConversationCreateCommand,
    topics.MEMBERS_ADD: events.MembersAddCommand,
    topics.MEMBERS_REMOVE: events.MembersRemoveCommand,
    topics.ROLE_SET: events.RoleSetCommand,
    topics.CONVERSATION_UPDATE: events.ConversationUpdateCommand,
    topics.MESSAGE_EDIT: events.MessageEditCommand,
    topics.MESSAGE_DELETE: events.MessageDeleteCommand,
    topics.REACTION_SET: events.ReactionSetCommand,
    topics.MESSAGE_CREATED: events.MessageCreated,
    topics.MESSAGE_UPDATED: events.MessageChanged,
    topics.WATERMARK_MOVED: events.WatermarkMoved,
    topics.CONVERSATION_CREATED: events.ConversationCreated,
    topics.CONVERSATION_UPDATED: events.ConversationChanged,
    topics.DELIVERY_FRAME: events.DeliveryFrame,
    topics.CONNECTION_OPENED: events.ConnectionOpened,
    topics.CONNECTION_CLOSED: events.ConnectionEnded,
    topics.GATEWAY_HEARTBEAT: events.GatewayHeartbeat,
    topics.STATUS_SET: events.StatusSet,
    topics.OFFLINE_DUE: events.OfflineDue,
    topics.TYPING: events.TypingCommand,
    topics.CONNECTIVITY_CHANGED: events.ConnectivityChanged,
    topics.NOTIFICATION_READ: events.NotificationReadCommand,
    topics.PREFS_SET: events.NotificationPrefsSetCommand,
    topics.CONVERSATION_MUTE: events.ConversationMuteCommand,
    topics.PUSH_SUBSCRIBE: events.PushSubscribeCommand,
    topics.PUSH_UNSUBSCRIBE: events.PushUnsubscribeCommand,
    topics.JOB_ALERT_MATCHED: events.JobAlertMatched,
    topics.APPLICATION_STATUS_CHANGED: events.ApplicationStatusChanged,
    topics.MESSAGES_ERASED: events.MessagesErased,
    topics.DELIVERY_CLOSE: events.DeliveryClose,
    topics.CONNECTIVITY_ERASED: events.ConnectivityErased,
    topics.USER_ERASURE_REQUESTED: events.UserErasureRequested,
    topics.USER_ERASED: events.UserErased,
}
#: Events other teams publish (../shared/events.md, docs/publishing-events.md): either
#: CloudEvents Kafka binding.
PARTNER_EVENTS = frozenset(
    {topics.JOB_ALERT_MATCHED, topics.APPLICATION_STATUS_CHANGED, topics.USER_ERASURE_REQUESTED}
)
TOPIC_EVENTS: dict[str, list[str]] = {
    topics.CHAT_COMMANDS: [
        topics.MESSAGE_SEND,
        topics.RECEIPT_POST,
        topics.CONVERSATION_CREATE,
        topics.MEMBERS_ADD,
        topics.MEMBERS_REMOVE,
        topics.ROLE_SET,
        topics.CONVERSATION_UPDATE,
        topics.MESSAGE_EDIT,
        topics.MESSAGE_DELETE,
        topics.REACTION_SET,
    ],
    topics.CHAT_EVENTS: [
        topics.MESSAGE_CREATED,
        topics.MESSAGE_UPDATED,
        topics.WATERMARK_MOVED,
        topics.CONVERSATION_UPDATED,
        topics.MESSAGES_ERASED,
    ],
    topics.CHAT_CONVERSATIONS: [topics.CONVERSATION_CREATED, topics.CONVERSATION_UPDATED],
    topics.DELIVERY: [topics.DELIVERY_FRAME, topics.DELIVERY_CLOSE],
    topics.PRESENCE_COMMANDS: [
        topics.CONNECTION_OPENED,
        topics.CONNECTION_CLOSED,
        topics.GATEWAY_HEARTBEAT,
        topics.STATUS_SET,
        topics.OFFLINE_DUE,
    ],
    topics.PRESENCE_TYPING: [topics.TYPING],
    topics.PRESENCE_CONNECTIVITY: [topics.CONNECTIVITY_CHANGED, topics.CONNECTIVITY_ERASED],
    topics.NOTIFIER_COMMANDS: [
        topics.NOTIFICATION_READ,
        topics.PREFS_SET,
        topics.CONVERSATION_MUTE,
        topics.PUSH_SUBSCRIBE,
        topics.PUSH_UNSUBSCRIBE,
    ],
    topics.JOBS_EVENTS: [topics.JOB_ALERT_MATCHED],
    topics.APPLICATIONS_EVENTS: [topics.APPLICATION_STATUS_CHANGED],
    topics.USERS_ERASURE: [topics.USER_ERASURE_REQUESTED],
    topics.USERS_ERASED: [topics.USER_ERASED],
}


def _dump(document: Any) -> bytes:
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def json_schemas() -> dict[str, dict[str, Any]]:
    """Every schema file by file name."""
    schemas: dict[str, dict[str, Any]] = {
        "client-frame.json": CLIENT_FRAME.json_schema(by_alias=True),
        "envelope.json": Envelope.model_json_schema(by_alias=True),
    }
    for model in SERVER_FRAMES:
        schemas[f"server-{_frame_type(model)}.json"] = model.model_json_schema(by_alias=True)
    for event_type, event_model in EVENT_MODELS.items():
        schemas[f"event-{event_type}.json"] = event_model.model_json_schema(by_alias=True)
    return schemas


def _frame_type(model: type[WireModel]) -> str:
    default = model.model_fields["type"].default
    assert isinstance(default, str)
    return default


def asyncapi() -> dict[str, Any]:
    """An AsyncAPI 3.0 document: the WebSocket channel and the Kafka topics."""
    messages: dict[str, Any] = {
        "clientFrame": {"payload": CLIENT_FRAME.json_schema(by_alias=True)},
    }
    for model in SERVER_FRAMES:
        messages[_frame_type(model).replace(".", "_")] = {
            "payload": model.model_json_schema(by_alias=True)
        }
    for event_type, event_model in EVENT_MODELS.items():
        messages[event_type.replace(".", "_")] = {
            "contentType": "application/cloudevents+json",
            "payload": _envelope_with(event_model),
        }
        if event_type in PARTNER_EVENTS:
            messages[_binary_name(event_type)] = {
                "contentType": "application/json",
                "headers": _binary_headers(event_type),
                "payload": TypeAdapter(event_model).json_schema(by_alias=True),
            }
    channels: dict[str, Any] = {
        "ws": {
            "address": "/v1/ws",
            "messages": {
                name: {"$ref": f"#/components/messages/{name}"}
                for name in messages
                if name == "clientFrame" or name in _server_names()
            },
        }
    }
    for topic, event_types in TOPIC_EVENTS.items():
        names = [event_type.replace(".", "_") for event_type in event_types]
        names += [
            _binary_name(event_type) for event_type in event_types if event_type in PARTNER_EVENTS
        ]
        channels[topic.replace(".", "_")] = {
            "address": topic,
            "messages": {name: {"$ref": f"#/components/messages/{name}"} for name in names},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Real-time messaging", "version": "1.0.0"},
        "channels": channels,
        "components": {"messages": messages},
    }


def _binary_name(event_type: str) -> str:
    return event_type.replace(".", "_") + "_binary"


def _binary_headers(event_type: str) -> dict[str, Any]:
    """The Kafka headers of an event in the binding's binary mode (the value is ``data``)."""
    text = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type"],
        "properties": {
            "ce_specversion": {"const": "1.0"},
            "ce_id": {**text, "description": "unique per source; repeats are applied once"},
            "ce_source": {**text, "description": "URI-reference of the publisher"},
            "ce_type": {"const": event_type},
            "ce_time": {
                "type": "string",
                "format": "date-time",
                "description": "optional: the record's timestamp stands in",
            },
            "ce_subject": text,
            "content-type": {
                "type": "string",
                "pattern": '^application/json(;\\s*charset="?utf-?8"?)?$',
                "description": "application/json, optionally with charset=utf-8",
            },
        },
    }


def _server_names() -> set[str]:
    return {_frame_type(model).replace(".", "_") for model in SERVER_FRAMES}


def _envelope_with(model: type[BaseModel]) -> dict[str, Any]:
    envelope = Envelope.model_json_schema(by_alias=True)
    envelope["properties"]["data"] = TypeAdapter(model).json_schema(by_alias=True)
    return envelope


def expected_files() -> dict[Path, bytes]:
    """Path -> content of every generated file."""
    files = {JSON_DIR / name: _dump(schema) for name, schema in json_schemas().items()}
    files[ASYNCAPI_PATH] = _dump(asyncapi())
    return files


def stale_files() -> list[Path]:
    """Generated files that are missing, differ, or should no longer exist."""
    expected = expected_files()
    stale = [
        path for path, body in expected.items() if not path.exists() or path.read_bytes() != body
    ]
    if JSON_DIR.exists():
        stale += [path for path in JSON_DIR.glob("*.json") if path not in expected]
    return sorted(stale)


def main(argv: list[str] | None = None) -> int:
    """Write or check the generated files; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail when files are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for path in stale:
            sys.stderr.write(f"stale: {path.relative_to(ROOT.parent)}\n")
        if stale:
            sys.stderr.write("run `make schemas` and commit the result\n")
        return 1 if stale else 0
    JSON_DIR.mkdir(exist_ok=True)
    expected = expected_files()
    for path in JSON_DIR.glob("*.json"):
        if path not in expected:
            path.unlink()
    for path, body in expected.items():
        path.write_bytes(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
