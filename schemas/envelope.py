"""The CloudEvents 1.0 envelope every Kafka record of ours carries (structured JSON mode).

Our own producers write structured mode (``content-type: application/cloudevents+json``): the
whole event is the record value, so one ``orjson`` call encodes it. Records from other internal
publishers may use binary mode; ``services.runtime.codec`` accepts both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from schemas.base import WireModel

#: Kafka header naming the structured-mode content type.
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"


class Envelope(WireModel):
    """A CloudEvent: context attributes plus JSON ``data``.

    Extension attributes (``traceparent``, ``partitionkey``, ...) are kept, not refused: the
    spec allows any, and other publishers add them.
    """

    model_config = ConfigDict(frozen=True, extra="allow")

    # CloudEvents spec version; only 1.0 is produced or accepted.
    specversion: Literal["1.0"] = "1.0"
    # Unique per source; consumers drop repeats by it.
    id: str = Field(min_length=1)
    # URI-reference of the producing service instance, e.g. ``/gateway/gw-1``.
    source: str = Field(min_length=1)
    # Event type, e.g. ``chat.message.send``; selects the model of ``data``.
    type: str = Field(min_length=1)
    # When the fact happened (commands: when the gateway received the frame).
    time: datetime
    # What the event is about: conversation id for chat, user id for delivery.
    subject: str | None = None
    # Media type of data.
    datacontenttype: Literal["application/json"] = "application/json"
    # The event payload, validated against the model its type names.
    data: dict[str, Any]
