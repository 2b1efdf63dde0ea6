"""Errors of the chat domain, each mapping to a protocol error code.

Tree::

    ChatError            base; ``code`` is the protocol error code sent to the client
    ├── Forbidden        not a member of the conversation (or it does not exist), not allowed
    │                    by the member's role, or by the kind of conversation (direct ones
    │                    cannot change)
    ├── NotFound         a message (or member) that is not in that conversation
    ├── Conflict         a client_msg_id reused for another conversation; a change that would
    │                    leave a group without an admin
    ├── TooLarge         past a limit: members per group, distinct reactions per message
    └── BadRequest       a command the gateway should not have let through, or a blank title
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


class NotFound(ChatError):
    code: ErrorCode = "not_found"


class Conflict(ChatError):
    code: ErrorCode = "conflict"


class TooLarge(ChatError):
    code: ErrorCode = "too_large"


class BadRequest(ChatError):
    code: ErrorCode = "bad_request"
