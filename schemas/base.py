"""Shared model configuration and wire helpers for every schema in this package.

Frames and events are immutable values: once parsed or built they are never mutated, which
lets services pass them between tasks without defensive copies.
"""

from __future__ import annotations

from typing import Annotated, Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, StringConstraints

#: A user id is the JWT ``sub``: 1..128 characters, never taken from a client frame.
UserId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: Conversation ids are server-made (``dm_…``) or come from the group service: bounded length.
ConversationId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
#: A client request id, echoed in the one answer to that request.
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class WireModel(BaseModel):
    """Base of every internal model: frozen, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def to_wire(self) -> bytes:
        """Serialise to compact JSON bytes, leaving out unset optional fields.

        Returns:
            UTF-8 JSON, field aliases applied (``all`` rather than ``all_``).
        """
        return orjson.dumps(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready mapping :meth:`to_wire` serialises."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_wire(cls, raw: bytes | str) -> Self:
        """Parse and validate JSON bytes.

        Raises:
            pydantic.ValidationError: the JSON is malformed or does not fit the model.
        """
        return cls.model_validate_json(raw)
