"""The notifier's hot-path frame encoders produce exactly what the schema models produce."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from schemas.frames import Notification, NotificationNew, NotificationReadEvent
from services.notifier import wire
from services.notifier.domain.inbox import View
from services.notifier.storage import DataJson, erase_preview

DATA = {"conversation_id": "dm_1", "sender_id": "al\u00e9", "message_id": "m1", "count": 2}


@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
        datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
    ],
)
def test_notification_new_is_the_models_frame(created_at: datetime) -> None:
    view = View(
        id="n1",
        kind="message",
        title="2 new messages",
        body='al\u00e9: "quoted" \U0001f600',
        data=DATA,
        created_at=created_at,
    )
    encode = wire.NotificationNewEncoder()
    data_json = orjson.dumps(DATA).decode()
    fast = encode(7, view, unread_count=3, data_json=data_json)
    model = NotificationNew(
        seq=7,
        notification=Notification(
            id="n1",
            kind="message",
            title=view.title,
            body=view.body,
            data=DATA,
            created_at=created_at,
        ),
        unread_count=3,
    )
    assert fast == model.to_wire()
    assert NotificationNew.from_wire(fast) == model
    # Another recipient of the same content: its own seq, id and count, the rest shared.
    other = View("n2", view.kind, view.title, view.body, view.data, created_at)
    again = encode(12, other, unread_count=40, data_json=data_json)
    expected = model.model_copy(
        update={
            "seq": 12,
            "notification": model.notification.model_copy(update={"id": "n2"}),
            "unread_count": 40,
        }
    )
    assert again == expected.to_wire()


def test_notification_new_of_different_contents_in_one_batch_do_not_mix() -> None:
    encode = wire.NotificationNewEncoder()
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    first = View("n1", "job_alert", "Job: A", "Acme", {"job_id": "a"}, now)
    second = View("n2", "job_alert", "Job: B", "Acme", {"job_id": "b"}, now)
    for view in (first, second, first):
        frame = orjson.loads(
            encode(1, view, unread_count=1, data_json=orjson.dumps(view.data).decode())
        )
        assert frame["notification"]["title"] == view.title
        assert frame["notification"]["data"] == view.data


@pytest.mark.parametrize("ids", [None, ("n1", "n2")])
def test_notification_read_is_the_models_frame(ids: tuple[str, ...] | None) -> None:
    fast = wire.notification_read(4, ids, unread_count=0)
    model = NotificationReadEvent(
        seq=4,
        ids=None if ids is None else list(ids),
        all_=True if ids is None else None,
        unread_count=0,
    )
    assert fast == model.to_wire()


def test_data_is_encoded_once_per_object_and_never_mixed_up() -> None:
    encode = DataJson()
    shared = {"job_id": "j1"}
    assert encode(shared) is encode(shared)
    assert encode({"job_id": "j2"}) == '{"job_id":"j2"}'
    assert encode(shared) == '{"job_id":"j1"}'


def test_erasing_a_preview_blanks_only_the_body() -> None:
    frame = orjson.loads(
        wire.NotificationNewEncoder()(
            1,
            View("n1", "message", "New message from al", "secret", DATA, datetime.now(UTC)),
            unread_count=1,
            data_json=orjson.dumps(DATA).decode(),
        )
    )
    erased = erase_preview(frame)
    assert erased["notification"]["body"] == ""
    assert erased["notification"]["title"] == "New message from al"
    assert erased["notification"]["data"] == DATA
    assert erase_preview({"type": "notification.read", "all": True}) == {
        "type": "notification.read",
        "all": True,
    }
