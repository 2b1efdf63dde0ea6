"""Checked-in JSON Schema and AsyncAPI files match the models and are valid documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from schemas import generate, topics
from schemas.frames import CLIENT_FRAME_TYPES, SERVER_FRAMES

SCHEMA_FILES = sorted(generate.JSON_DIR.glob("*.json"))


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def test_generated_files_are_fresh() -> None:
    assert generate.stale_files() == [], "run `python -m schemas.generate` and commit"


def test_check_mode_exits_zero() -> None:
    assert generate.main(["--check"]) == 0


def test_every_expected_file_is_checked_in() -> None:
    expected = set(generate.expected_files())
    assert expected == {*SCHEMA_FILES, generate.ASYNCAPI_PATH}
    # One per server frame, one per event type, plus the client frame union and the envelope.
    assert len(SCHEMA_FILES) == len(SERVER_FRAMES) + len(generate.EVENT_MODELS) + 2


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda path: path.name)
def test_schema_is_valid_draft_2020_12(path: Path) -> None:
    jsonschema.Draft202012Validator.check_schema(load(path))


def test_asyncapi_payloads_are_valid_schemas() -> None:
    document = load(generate.ASYNCAPI_PATH)
    for message in document["components"]["messages"].values():
        jsonschema.Draft202012Validator.check_schema(message["payload"])


def test_asyncapi_channels() -> None:
    document = load(generate.ASYNCAPI_PATH)
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {
        "/v1/ws",
        topics.CHAT_COMMANDS,
        topics.CHAT_EVENTS,
        topics.CHAT_CONVERSATIONS,
        topics.DELIVERY,
        topics.PRESENCE_COMMANDS,
        topics.PRESENCE_TYPING,
        topics.PRESENCE_CONNECTIVITY,
        topics.NOTIFIER_COMMANDS,
        topics.JOBS_EVENTS,
        topics.APPLICATIONS_EVENTS,
        topics.USERS_ERASURE,
        topics.USERS_ERASED,
    }


def test_asyncapi_topic_messages() -> None:
    document = load(generate.ASYNCAPI_PATH)
    by_address = {channel["address"]: channel for channel in document["channels"].values()}
    assert set(by_address[topics.CHAT_COMMANDS]["messages"]) == {
        "chat_message_send",
        "chat_receipt_post",
        "chat_conversation_create",
        "chat_members_add",
        "chat_members_remove",
        "chat_role_set",
        "chat_conversation_update",
        "chat_message_edit",
        "chat_message_delete",
        "chat_reaction_set",
    }
    assert set(by_address[topics.CHAT_EVENTS]["messages"]) == {
        "chat_message_created",
        "chat_message_updated",
        "chat_watermark_moved",
        "chat_conversation_updated",
        "chat_messages_erased",
    }
    assert set(by_address[topics.CHAT_CONVERSATIONS]["messages"]) == {
        "chat_conversation_created",
        "chat_conversation_updated",
    }
    assert set(by_address[topics.DELIVERY]["messages"]) == {"delivery_frame", "delivery_close"}
    assert set(by_address[topics.PRESENCE_COMMANDS]["messages"]) == {
        "presence_connection_opened",
        "presence_connection_closed",
        "presence_gateway_heartbeat",
        "presence_status_set",
        "presence_offline_due",
    }
    assert set(by_address[topics.PRESENCE_TYPING]["messages"]) == {"presence_typing"}
    assert set(by_address[topics.PRESENCE_CONNECTIVITY]["messages"]) == {
        "presence_connectivity_changed",
        "presence_connectivity_erased",
    }
    assert set(by_address[topics.NOTIFIER_COMMANDS]["messages"]) == {
        "notifier_notification_read",
        "notifier_prefs_set",
        "notifier_conversation_mute",
        "notifier_push_subscribe",
        "notifier_push_unsubscribe",
    }
    # Other teams publish in either CloudEvents Kafka binding: both are documented.
    assert set(by_address[topics.JOBS_EVENTS]["messages"]) == {
        "job_alert_matched",
        "job_alert_matched_binary",
    }
    assert set(by_address[topics.APPLICATIONS_EVENTS]["messages"]) == {
        "application_status_changed",
        "application_status_changed_binary",
    }
    # Erasure requests come from erase-user or the site's own services (either binding).
    assert set(by_address[topics.USERS_ERASURE]["messages"]) == {
        "user_erasure_requested",
        "user_erasure_requested_binary",
    }
    assert set(by_address[topics.USERS_ERASED]["messages"]) == {"user_erased"}
    messages = document["components"]["messages"]
    for channel in document["channels"].values():
        for ref in channel["messages"].values():
            name = ref["$ref"].removeprefix("#/components/messages/")
            assert name in messages


def test_asyncapi_ws_channel_lists_client_and_every_server_frame() -> None:
    document = load(generate.ASYNCAPI_PATH)
    ws = next(c for c in document["channels"].values() if c["address"] == "/v1/ws")
    assert set(ws["messages"]) == {
        "clientFrame",
        "hello",
        "ack",
        "error",
        "pong",
        "message_new",
        "message_status",
        "typing",
        "presence",
        "notification_new",
        "notification_read",
        "message_updated",
        "conversation_updated",
    }


def test_client_frame_schema_covers_every_client_type() -> None:
    schema = load(generate.JSON_DIR / "client-frame.json")
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == CLIENT_FRAME_TYPES


def test_client_frame_schema_rejects_unknown_type() -> None:
    validator = jsonschema.Draft202012Validator(load(generate.JSON_DIR / "client-frame.json"))
    assert not validator.is_valid({"type": "nope"})
    assert not validator.is_valid({"type": "receipt", "conversation_id": "c", "seq": "5"})
    assert validator.is_valid(
        {"type": "receipt", "conversation_id": "c", "seq": 5, "status": "read"}
    )


def test_envelope_schema_wraps_event_data_in_asyncapi() -> None:
    document = load(generate.ASYNCAPI_PATH)
    message = document["components"]["messages"]["chat_message_send"]
    assert message["contentType"] == "application/cloudevents+json"
    data = message["payload"]["properties"]["data"]
    assert "sender_id" in data["properties"]


def test_partner_events_binary_mode_documents_headers_and_bare_data() -> None:
    document = load(generate.ASYNCAPI_PATH)
    message = document["components"]["messages"]["job_alert_matched_binary"]
    assert message["contentType"] == "application/json"
    headers = message["headers"]
    assert set(headers["required"]) == {"ce_specversion", "ce_id", "ce_source", "ce_type"}
    assert headers["properties"]["ce_type"] == {"const": topics.JOB_ALERT_MATCHED}
    assert "user_ids" in message["payload"]["properties"]
    jsonschema.Draft202012Validator.check_schema(headers)


def test_partner_event_schemas_accept_the_contracts_examples() -> None:
    # The examples of ../shared/events.md, as publishers will validate them.
    alert = jsonschema.Draft202012Validator(
        load(generate.JSON_DIR / "event-job.alert.matched.json")
    )
    assert alert.is_valid(
        {
            "job_id": "j-123",
            "title": "Cleared Systems Engineer",
            "company": "Acme",
            "location": "Reston, VA",
            "url": "https://example.org/jobs/j-123",
            "user_ids": ["u1", "u2"],
        }
    )
    assert not alert.is_valid({"job_id": "j-1", "title": "t", "url": "https://x", "user_ids": []})
    status = jsonschema.Draft202012Validator(
        load(generate.JSON_DIR / "event-application.status.changed.json")
    )
    assert status.is_valid(
        {
            "application_id": "a-9",
            "job_id": "j-123",
            "job_title": "Cleared Systems Engineer",
            "candidate_id": "u1",
            "status": "interview",
            "previous_status": "submitted",
            "changed_at": "2026-11-30T12:00:00Z",
            "note": "optional, at most 1000 chars",
        }
    )
    assert not status.is_valid(
        {
            "application_id": "a-9",
            "job_id": "j-123",
            "job_title": "t",
            "candidate_id": "u1",
            "status": "promoted",
            "changed_at": "2026-11-30T12:00:00Z",
        }
    )
