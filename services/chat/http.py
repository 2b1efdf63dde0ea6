"""The chat service's internal HTTP reads, for gateways: ``conversations.list``, ``history``
and ``search`` of a user (``sync`` is the runtime's stream route).

Not exposed to browsers: gateways call ``/internal/v1/users/{user_id}/...`` on behalf of an
authenticated user, so the user id in the path is trusted only as far as the gateway is (and
every read runs under Row Level Security keyed on it). A refused read answers 4xx with
``{"code", "message"}``, the protocol's error code and a reason without user data; the gateway
turns it into an ``error``.

Reads go over HTTP rather than through Kafka: they change nothing, so they need neither the
ordering nor the durability of the command topic, and an answer comes without the consumer's
lag (or a rebalance) in the way; read replicas can serve them later.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Query, Response

from schemas.frames import CONVERSATIONS_PAGE, HISTORY_PAGE, MAX_QUERY_CHARS, SEARCH_PAGE
from services.chat import reads
from services.chat.domain.cursors import decode_cursor, encode_cursor
from services.chat.domain.errors import ChatError
from services.runtime.http import JSON, require_internal_token
from services.runtime.metrics import DB_SECONDS

_STATUS = {"bad_request": 400, "forbidden": 403, "not_found": 404}
_GUARDED = [Depends(require_internal_token)]


def _refused(exc: ChatError) -> Response:
    body = orjson.dumps({"code": exc.code, "message": exc.message})
    return Response(body, status_code=_STATUS.get(exc.code, 400), media_type=JSON)


def add_read_routes(app: FastAPI, *, pool: asyncpg.Pool, now: Callable[[], datetime]) -> None:
    """Serve the list, history and search reads on ``app`` (the service's internal app)."""

    @app.get("/internal/v1/users/{user_id}/conversations", dependencies=_GUARDED)
    async def list_conversations(
        user_id: str,
        before: Annotated[str | None, Query(max_length=512)] = None,
        limit: Annotated[int, Query(ge=1, le=CONVERSATIONS_PAGE[1])] = CONVERSATIONS_PAGE[0],
    ) -> Response:
        """``conversations.list``: ``{"conversations", "cursor", "has_more"}``."""
        try:
            cursor = None if before is None else decode_cursor(before)
            with DB_SECONDS.labels("conversations_read").time():
                async with pool.acquire() as conn:
                    page = await reads.list_conversations(
                        conn, user_id=user_id, cursor=cursor, limit=limit, now=now()
                    )
        except ChatError as exc:
            return _refused(exc)
        body: dict[str, object] = {
            "conversations": [orjson.Fragment(c.to_wire()) for c in page.conversations],
            "has_more": page.has_more,
        }
        if page.next_cursor is not None:
            body["cursor"] = encode_cursor(page.next_cursor)
        return Response(orjson.dumps(body), media_type=JSON)

    @app.get(
        "/internal/v1/users/{user_id}/conversations/{conversation_id}/messages",
        dependencies=_GUARDED,
    )
    async def history(
        user_id: str,
        conversation_id: str,
        before_seq: Annotated[int | None, Query(ge=1)] = None,
        limit: Annotated[int, Query(ge=1, le=HISTORY_PAGE[1])] = HISTORY_PAGE[0],
    ) -> Response:
        """``history``: ``{"messages" (newest first), "has_more"}``."""
        try:
            with DB_SECONDS.labels("history_read").time():
                async with pool.acquire() as conn:
                    messages, has_more = await reads.history(
                        conn,
                        user_id=user_id,
                        conversation_id=conversation_id,
                        before_seq=before_seq,
                        limit=limit,
                    )
        except ChatError as exc:
            return _refused(exc)
        body = orjson.dumps(
            {"messages": [orjson.Fragment(m.to_wire()) for m in messages], "has_more": has_more}
        )
        return Response(body, media_type=JSON)

    @app.get("/internal/v1/users/{user_id}/search", dependencies=_GUARDED)
    async def search(
        user_id: str,
        query: Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS)],
        conversation_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=SEARCH_PAGE[1])] = SEARCH_PAGE[0],
    ) -> Response:
        """``search``: ``{"messages"}``, best match first."""
        try:
            with DB_SECONDS.labels("search_read").time():
                async with pool.acquire() as conn:
                    messages = await reads.search(
                        conn,
                        user_id=user_id,
                        query=query,
                        conversation_id=conversation_id,
                        limit=limit,
                    )
        except ChatError as exc:
            return _refused(exc)
        body = orjson.dumps({"messages": [orjson.Fragment(m.to_wire()) for m in messages]})
        return Response(body, media_type=JSON)
