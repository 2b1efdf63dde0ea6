"""Errors of the gateway's protocol core.

Tree::

    GatewayError          base
    ├── AuthError            the upgrade is refused: ``status`` is 401 or 403
    ├── FrameError           a client frame is refused: ``code`` is the protocol error code
    │                        and ``request_id`` the frame's id when it could be read
    └── UpstreamUnavailable  a service the gateway reads from (chat, presence) did not answer:
                             the client gets ``unavailable`` (or HTTP 503) and retries
"""

from __future__ import annotations

from schemas.frames import ErrorCode


class GatewayError(Exception):
    """Base of every gateway error."""


class AuthError(GatewayError):
    """The WebSocket upgrade is refused with an HTTP status (no WebSocket is opened)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class FrameError(GatewayError):
    """A client frame is answered with an ``error`` frame; the connection stays open."""

    def __init__(self, code: ErrorCode, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.request_id = request_id


class UpstreamUnavailable(GatewayError):
    """An internal service did not answer; ``service`` names it (for logs and metrics)."""

    def __init__(self, service: str) -> None:
        super().__init__(f"{service} unavailable")
        self.service = service
