"""``conversations.list``, ``history`` and ``search``: reads the chat service answers over its
internal HTTP API, like ``sync`` (docs/architecture.md says why not through Kafka).

The chat service answers with the ack's fields, already in wire form; the gateway adds the
``type`` and the request's ``id`` and passes the rest through without re-validating it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from schemas.frames import ConversationsList, History, Search
from services.gateway.domain.errors import FrameError, UpstreamUnavailable

ReadFrame = ConversationsList | History | Search
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
        try:
            response = await self._client.get(
                self._base_url + path, params=params, headers=self._headers
            )
            body = orjson.loads(response.content)
        except (httpx.HTTPError, orjson.JSONDecodeError) as exc:
            raise UpstreamUnavailable(frame.type) from exc
        if response.status_code == 200 and isinstance(body, dict):
            return body
        code = body.get("code") if isinstance(body, dict) else None
        if response.status_code < 500 and code in _REFUSALS:
            raise FrameError(code, str(body.get("message", code)))
        raise UpstreamUnavailable(frame.type)
