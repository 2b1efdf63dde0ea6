"""The frames and the fact of a new message, encoded around the message's JSON.

A new message goes out four times: ``message.new`` to each member (stored and delivered), the
sender's ``ack`` and the ``chat.message.created`` fact. Building a pydantic model of each and
dumping it serialises the same message four times; here the message is dumped once and carried
into each as an ``orjson.Fragment``. The bytes are those of the models' ``to_wire()`` (same
keys, same order; a unit test holds them together), so a frame stored for ``sync`` and the one
pushed live stay identical.
"""

from __future__ import annotations

import orjson


def message_new(seq: int, message: orjson.Fragment) -> bytes:
    """``MessageNew(seq=seq, message=...).to_wire()``."""
    return orjson.dumps({"type": "message.new", "stream": "chat", "seq": seq, "message": message})


def ack_with_message(request_id: str, message: orjson.Fragment) -> bytes:
    """``Ack(id=request_id, message=...).to_wire()``."""
    return orjson.dumps({"type": "ack", "id": request_id, "message": message})


def message_created(message: orjson.Fragment, member_ids: list[str]) -> bytes:
    """``MessageCreated(message=..., member_ids=member_ids).to_wire()``."""
    return orjson.dumps({"message": message, "member_ids": member_ids})
