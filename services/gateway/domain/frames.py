"""Client frame parsing: text in, a typed frame or a :class:`FrameError` out. Pure.

Error messages name the offending field and the kind of problem, never its value: a body is
never echoed back (protocol.md, "Error messages never echo message bodies").

Whatever the frame type, nothing Postgres cannot store gets past the gateway: a string with
U+0000 or an integer beyond 64 bits would fail deep in a service, after the gateway handed the
command on, and the client would never get its answer (found by tests/integration/
test_fuzz_frames.py). Checked for every frame type, the ones added later included.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
import pydantic

from schemas.frames import (
    CLIENT_FRAME,
    CLIENT_FRAME_MODELS,
    CLIENT_FRAME_PARTS,
    CLIENT_FRAME_TYPES,
    AnyClientFrame,
)
from services.gateway.domain.errors import FrameError

_MAX_REQUEST_ID = 64
#: Frames whose ``body`` is a message text, bounded by the configured max_body_chars.
_BODY_TYPES = frozenset({"message.send", "message.edit"})
#: Postgres bigint, the widest integer any service stores.
_INT64 = range(-(2**63), 2**63)
#: Cheap tests on the raw text that let almost every frame skip the walk below: JSON can only
#: carry U+0000 escaped, and an integer beyond 64 bits needs 19 digits or more.
_MAYBE_NUL = "\\u0000"
_MAYBE_WIDE_INTEGER = re.compile(r"\d{19}")


def parse_client_frame(text: str, *, max_body_chars: int) -> AnyClientFrame:
    """Validate one client text frame.

    Args:
        text: the frame as received.
        max_body_chars: the configured body limit (at most the schema's).

    Raises:
        FrameError: ``bad_request`` for malformed frames, ``too_large`` for a body over the
            limit; ``request_id`` is set whenever the frame's id could be read.
    """
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError("bad_request", "frame is not valid JSON") from None
    if not isinstance(raw, dict):
        raise FrameError("bad_request", "frame must be a JSON object")
    request_id = _readable_id(raw.get("id"))
    frame_type = raw.get("type")
    if not isinstance(frame_type, str):
        raise FrameError("bad_request", "frame has no string 'type'", request_id)
    if frame_type not in CLIENT_FRAME_TYPES:
        raise FrameError("bad_request", "unknown frame type", request_id)
    if _MAYBE_NUL in text or _MAYBE_WIDE_INTEGER.search(text):
        problem = _unstorable(raw)
        if problem is not None:
            raise FrameError("bad_request", problem, request_id)
    body = raw.get("body")
    if frame_type in _BODY_TYPES and isinstance(body, str) and len(body) > max_body_chars:
        raise FrameError("too_large", f"body exceeds {max_body_chars} characters", request_id)
    try:
        return CLIENT_FRAME.validate_python(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise FrameError("bad_request", _describe(exc), request_id) from None


def _unstorable(value: Any) -> str | None:
    """What no service could store in ``value`` (keys included), or None."""
    if isinstance(value, str):
        return "strings must not contain U+0000" if "\x00" in value else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if value in _INT64 else "integers must fit in 64 bits"
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable(key) or _unstorable(item)
            if problem is not None:
                return problem
    elif isinstance(value, list):
        for item in value:
            problem = _unstorable(item)
            if problem is not None:
                return problem
    return None


def _readable_id(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_REQUEST_ID:
        return value
    return None


def _describe(exc: pydantic.ValidationError) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:3]:
        # The first element of loc is the union tag (the frame type): skip it.
        location = ".".join(_location_part(part) for part in error["loc"][1:]) or "frame"
        problems.append(f"{location}: {error['type']}")
    return "invalid frame: " + "; ".join(problems)


def _location_part(part: str | int) -> str:
    """A field name or list index as is; anything else (a client's dict key) as ``*``, so an
    error message never carries what the client sent, nor grows with it."""
    if isinstance(part, int) or part in _FIELD_NAMES:
        return str(part)
    return "*"


_FIELD_NAMES = frozenset(
    name
    for model in (*CLIENT_FRAME_MODELS, *CLIENT_FRAME_PARTS)
    for field_name, field in model.model_fields.items()
    for name in (field_name, field.alias)
    if name
) | {"[key]"}
