"""Errors of the chat domain, each mapping to a protocol error code.

Tree::

    ChatError            base; ``code`` is the protocol error code sent to the client
    ├── Forbidden        not a member of the conversation (or it does not exist)
    ├── Conflict         a client_msg_id reused for another conversation
    └── BadRequest       a command the gateway should not have let through
"""

from __future__ import annotations

from schemas.frames import ErrorCode


class ChatError(Exception):
    """A command the chat service refuses; the requester gets an ``error`` frame."""

    code: ErrorCode = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Forbidden(ChatError):
    code: ErrorCode = "forbidden"


class Conflict(ChatError):
    code: ErrorCode = "conflict"


class BadRequest(ChatError):
    code: ErrorCode = "bad_request"
