"""Kafka record <-> :class:`schemas.envelope.Envelope`.

Our producers write structured mode, one orjson call per record, and every one of them builds
its events with an :class:`EventBuilder` (gateway commands, chat facts, delivery frames,
presence timers). Other internal publishers may use either CloudEvents Kafka binding
(../shared/events.md); binary mode (``ce_*`` headers) is read with the ``cloudevents`` SDK
rather than hand-rolled header parsing.

What the binding allows, and nothing else:

- structured: the value is the whole event; a ``content-type`` header, when present, must be
  ``application/cloudevents+json`` (our own producers send none: a record without it and
  without ``ce_specversion`` is structured);
- binary: ``ce_specversion`` selects it; ``content-type`` (``datacontenttype``) must be
  ``application/json`` or absent, since ``data`` must be a JSON object;
- either: a ``charset`` parameter is allowed, and must say UTF-8 (JSON's encoding); ``time`` is
  optional, and the record's timestamp stands in for a missing one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import pydantic
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from schemas.envelope import STRUCTURED_CONTENT_TYPE, Envelope
from services.runtime.errors import RecordRejected
from services.runtime.outbox import OutboundRecord

#: Headers of every record we produce (structured mode).
STRUCTURED_HEADERS: list[tuple[str, bytes]] = [
    ("content-type", STRUCTURED_CONTENT_TYPE.encode()),
]
_JSON_FORMAT = JSONFormat()
ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)
#: ``data`` of an event we produce: a JSON-ready mapping (which may hold ``orjson.Fragment``
#: values of frames already encoded), or the whole data pre-encoded.
EventData = dict[str, object] | orjson.Fragment


def encode(envelope: Envelope) -> bytes:
    """The record value of a structured-mode event."""
    return envelope.to_wire()


def decode(
    value: bytes | None, headers: Sequence[tuple[str, bytes]], *, timestamp_ms: int | None = None
) -> Envelope:
    """Parse a record value and headers into an envelope, whichever binding was used.

    Args:
        value: the record value.
        headers: the record headers (names compared case-insensitively).
        timestamp_ms: the record's timestamp: the event's ``time`` when it carries none
            (CloudEvents makes ``time`` optional); when not given either, the time of reading.

    Raises:
        RecordRejected: the record is not a valid CloudEvent with a JSON object as data.
    """
    if value is None:
        raise RecordRejected("empty_value")
    header_map = {name.lower(): raw for name, raw in headers}
    if "ce_specversion" in header_map:
        return _decode_binary(value, header_map, timestamp_ms)
    if not _media_type_is(header_map.get("content-type"), STRUCTURED_CONTENT_TYPE):
        raise RecordRejected("invalid_envelope:content_type")
    try:
        return Envelope.from_wire(value)
    except pydantic.ValidationError as exc:
        if _only_time_missing(exc):
            return _with_time(value, _record_time(timestamp_ms))
        raise RecordRejected(f"invalid_envelope:{_first_error(exc)}") from exc


def _media_type_is(header: bytes | None, expected: str) -> bool:
    """Whether a ``content-type`` header is absent or names ``expected`` (parameters aside, a
    charset only if it is UTF-8). Media types and parameter names are case-insensitive."""
    if header is None:
        return True
    try:
        text = header.decode("ascii")
    except UnicodeDecodeError:
        return False
    media_type, *parameters = (part.strip().lower() for part in text.split(";"))
    if media_type != expected:
        return False
    for parameter in parameters:
        name, _, setting = parameter.partition("=")
        if name.strip() == "charset" and setting.strip().strip('"') not in ("utf-8", "utf8"):
            return False
    return True


def _only_time_missing(exc: pydantic.ValidationError) -> bool:
    errors = exc.errors(include_input=False, include_url=False)
    return all(error["loc"] == ("time",) and error["type"] == "missing" for error in errors)


def _record_time(timestamp_ms: int | None) -> datetime:
    if timestamp_ms is None:
        return datetime.now(UTC)
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC)


def _with_time(value: bytes, time: datetime) -> Envelope:
    """A structured event without ``time``, the record's timestamp standing in. Only reached
    when the rest of the event validated, so the value is a JSON object."""
    try:
        return Envelope.model_validate({**orjson.loads(value), "time": time})
    except (pydantic.ValidationError, orjson.JSONDecodeError, TypeError) as exc:
        raise RecordRejected("invalid_envelope:record:time") from exc


def _decode_binary(value: bytes, headers: dict[str, bytes], timestamp_ms: int | None) -> Envelope:
    # The SDK would invent an id (breaking dedupe by id) and relabel 0.3 events as 1.0.
    if headers.get("ce_specversion") != b"1.0":
        raise RecordRejected("invalid_binary_event:specversion")
    if not headers.get("ce_id"):
        raise RecordRejected("invalid_binary_event:id")
    if not _media_type_is(headers.get("content-type"), "application/json"):
        raise RecordRejected("invalid_binary_event:content_type")
    try:
        event = from_binary(KafkaMessage(headers=headers, key=None, value=value), _JSON_FORMAT)
        data = event.get_data()
        if isinstance(data, bytes | str):
            data = orjson.loads(data)
        return Envelope(
            id=event.get_id(),
            source=event.get_source(),
            type=event.get_type(),
            # The SDK stamps an event without ce_time with the time of reading; the record's
            # timestamp is closer to when it happened.
            time=event.get_time() if "ce_time" in headers else _record_time(timestamp_ms),
            subject=event.get_subject(),
            data=data,
        )
    except (
        BaseCloudEventException,
        pydantic.ValidationError,
        orjson.JSONDecodeError,
        ValueError,
        TypeError,
    ) as exc:
        raise RecordRejected(f"invalid_binary_event:{type(exc).__name__}") from exc


def _first_error(exc: pydantic.ValidationError) -> str:
    """Location and kind of the first validation error; never the offending input."""
    first = exc.errors(include_input=False, include_url=False)[0]
    location = ".".join(str(part) for part in first["loc"]) or "record"
    return f"{location}:{first['type']}"


def parse_data(envelope: Envelope, model: type[ModelT]) -> ModelT:
    """Validate an envelope's ``data`` against the model its type names.

    Raises:
        RecordRejected: the data does not fit the model.
    """
    try:
        return model.model_validate(envelope.data)
    except pydantic.ValidationError as exc:
        raise RecordRejected(f"invalid_data:{_first_error(exc)}") from exc


def encode_event(
    *,
    event_id: str,
    source: str,
    event_type: str,
    subject: str,
    time: datetime,
    data: EventData,
) -> bytes:
    """Encode a structured-mode event without building an :class:`Envelope` first.

    The hot path of the chat service emits several records per message; one orjson call here
    (``data`` may hold ``orjson.Fragment`` values of frames already encoded for storage) is
    what keeps that cheap. The bytes parse as an :class:`Envelope`, which the tests check.
    """
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": event_id,
            "source": source,
            "type": event_type,
            "time": time,
            "subject": subject,
            "datacontenttype": "application/json",
            "data": data,
        }
    )


class EventBuilder:
    """How every producer of ours makes its events: one builder per producing instance.

    It holds what all of an instance's events share (the CloudEvents ``source``, the clock and
    the id factory, both injected) and encodes each event with :func:`encode_event`: one orjson
    call, ``data`` possibly pre-encoded.

    Args:
        source: CloudEvents source of the producing instance, e.g. ``/chat/<instance id>``.
        now: the clock (``time`` of each event).
        new_id: event ids, unique per source (consumers drop repeats by them).
    """

    __slots__ = ("_new_id", "_now", "_source")

    def __init__(
        self, *, source: str, now: Callable[[], datetime], new_id: Callable[[], str]
    ) -> None:
        self._source = source
        self._now = now
        self._new_id = new_id

    def record(
        self,
        topic: str,
        event_type: str,
        *,
        key: str,
        data: EventData,
        subject: str | None = None,
        time: datetime | None = None,
    ) -> OutboundRecord:
        """A keyed structured-mode record of one event.

        Args:
            topic: where it goes.
            event_type: the CloudEvents ``type`` (:mod:`schemas.topics`).
            key: the record key, UTF-8 encoded (conversation id, user id, ...).
            data: the event's data.
            subject: the CloudEvents ``subject``; the key when not given.
            time: when it happened; now when not given.
        """
        value = encode_event(
            event_id=self._new_id(),
            source=self._source,
            event_type=event_type,
            subject=key if subject is None else subject,
            time=self._now() if time is None else time,
            data=data,
        )
        return OutboundRecord(topic=topic, key=key.encode(), value=value)

    def records_at(
        self,
        topic: str,
        event_type: str,
        items: Iterable[tuple[str, bytes]],
        *,
        time: datetime,
    ) -> list[OutboundRecord]:
        """Keyed structured-mode records of one type made at one moment: ``(key, data)``
        pairs, ``data`` an already-encoded JSON object, the key also the subject.

        What the events share is encoded once and each record spliced from bytes around its
        id, subject and data: a job alert makes 10,000 delivery records, and one orjson call
        per record over its whole envelope cost about three times as much. The bytes parse as
        the :class:`Envelope` :meth:`record` would make (unit tests).
        """
        shared = orjson.dumps(
            {
                "specversion": "1.0",
                "source": self._source,
                "type": event_type,
                "time": time,
                "datacontenttype": "application/json",
            }
        )
        head = shared[:-1] + b',"id":'
        new_id = self._new_id
        dumps = orjson.dumps
        return [
            OutboundRecord(
                topic=topic,
                key=key.encode(),
                value=b"".join(
                    (head, dumps(new_id()), b',"subject":', dumps(key), b',"data":', data, b"}")
                ),
            )
            for key, data in items
        ]
