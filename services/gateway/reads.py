"""Reads their owners answer over internal HTTP, like ``sync`` (docs/architecture.md says why
not through Kafka): ``conversations.list``, ``history`` and ``search`` from the chat service,
``notifications.list`` and ``notification.prefs.get`` from the notifier.

The owner answers with the ack's fields, already in wire form; the gateway adds the ``type``
and the request's ``id`` and passes the rest through without re-validating it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from schemas.frames import (
    ConversationsList,
    History,
    NotificationPrefsGet,
    NotificationsList,
    Search,
)
from services.gateway.domain.errors import FrameError, UpstreamUnavailable

ReadFrame = ConversationsList | History | Search
NotifierReadFrame = NotificationsList | NotificationPrefsGet
#: Codes the chat service may refuse a read with (anything else means it is unwell).
_REFUSALS = frozenset({"bad_request", "forbidden", "not_found"})


class ChatReads:
    """Reads from the chat service on behalf of an authenticated user.

    Args:
        client: shared HTTP client (connection pooling across requests).
        base_url: the chat service's internal API.
        internal_token: sent as ``X-Internal-Token`` when set.
    """

    def __init__(
        self, *, client: httpx.AsyncClient, base_url: str, internal_token: str | None
    ) -> None:
        self._client = client
        self._base_url = base_url
        self._headers = {"X-Internal-Token": internal_token} if internal_token else {}

    async def read(self, frame: ReadFrame, *, user_id: str) -> dict[str, Any]:
        """The ack's fields for ``frame`` (``conversations``/``cursor``/``has_more``,
        ``messages``/``has_more``, or ``messages``).

        Raises:
            FrameError: the chat service refused the read (not a member, a bad cursor).
            UpstreamUnavailable: it did not answer, or answered with anything else.
        """
        user = quote(user_id, safe="")
        params: dict[str, str | int] = {}
        if frame.limit is not None:
            params["limit"] = frame.limit
        if isinstance(frame, ConversationsList):
            path = f"/internal/v1/users/{user}/conversations"
            if frame.before is not None:
                params["before"] = frame.before
        elif isinstance(frame, History):
            conversation = quote(frame.conversation_id, safe="")
            path = f"/internal/v1/users/{user}/conversations/{conversation}/messages"
            if frame.before_seq is not None:
                params["before_seq"] = frame.before_seq
        else:
            path = f"/internal/v1/users/{user}/search"
            params["query"] = frame.query
            if frame.conversation_id is not None:
                params["conversation_id"] = frame.conversation_id
        return await _get(
            self._client, self._base_url + path, params, self._headers, what=frame.type
        )


class NotifierReads:
    """Reads from the notifier on behalf of an authenticated user: the bell.

    Args:
        client: shared HTTP client.
        base_url: the notifier's internal API; None when this deployment runs no notifier
            (every read is then ``unavailable``).
        internal_token: sent as ``X-Internal-Token`` when set.
    """

    def __init__(
        self, *, client: httpx.AsyncClient, base_url: str | None, internal_token: str | None
    ) -> None:
        self._client = client
        self._base_url = base_url
        self._headers = {"X-Internal-Token": internal_token} if internal_token else {}

    async def read(self, frame: NotifierReadFrame, *, user_id: str) -> dict[str, Any]:
        """The ack's fields for ``frame`` (``notifications``/``unread_count``/``has_more``, or
        ``prefs``).

        Raises:
            FrameError: the notifier refused the read (``before`` is not the user's).
            UpstreamUnavailable: no notifier, or it did not answer.
        """
        if self._base_url is None:
            raise UpstreamUnavailable(frame.type)
        user = quote(user_id, safe="")
        params: dict[str, str | int] = {}
        if isinstance(frame, NotificationsList):
            path = f"/internal/v1/notifications/{user}"
            params["unread_only"] = "true" if frame.unread_only else "false"
            if frame.limit is not None:
                params["limit"] = frame.limit
            if frame.before is not None:
                params["before"] = frame.before
        else:
            path = f"/internal/v1/notification-prefs/{user}"
        return await _get(
            self._client, self._base_url + path, params, self._headers, what=frame.type
        )


async def _get(
    client: httpx.AsyncClient,
    url: str,
    params: dict[str, str | int],
    headers: dict[str, str],
    *,
    what: str,
) -> dict[str, Any]:
    """An owner's answer: its JSON object, or its refusal as a :class:`FrameError`.

    Raises:
        FrameError: a refusal (4xx with a protocol code the client may get).
        UpstreamUnavailable: no answer, or any other one.
    """
    try:
        response = await client.get(url, params=params, headers=headers)
        body = orjson.loads(response.content)
    except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
        raise UpstreamUnavailable(what) from exc
    if response.status_code == 200 and isinstance(body, dict):
        return body
    code = body.get("code") if isinstance(body, dict) else None
    if response.status_code < 500 and code in _REFUSALS:
        raise FrameError(code, str(body.get("message", code)))
    raise UpstreamUnavailable(what)
