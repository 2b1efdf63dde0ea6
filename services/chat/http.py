"""Internal HTTP API of the chat service: sync for gateways, health, metrics.

Not exposed to browsers: gateways call ``/internal/v1/streams/chat/{user_id}`` on behalf of an
authenticated user, so the user id in the path is trusted only as far as the gateway is.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Query, Request, Response

from services.chat import storage
from services.runtime.health import Readiness
from services.runtime.http import JSON, internal_app, require_internal_token
from services.runtime.metrics import DB_SECONDS


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def build_http_app(
    *, pool: asyncpg.Pool, readiness: Readiness, internal_token: str | None, sync_default_limit: int
) -> FastAPI:
    """The FastAPI app; dependencies come from ``app.state`` set here."""
    app = internal_app(title="chat (internal)", readiness=readiness, internal_token=internal_token)
    app.state.pool = pool

    @app.get("/internal/v1/streams/chat/{user_id}", dependencies=[Depends(require_internal_token)])
    async def read_stream(
        user_id: str,
        pool: Annotated[asyncpg.Pool, Depends(_pool)],
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> Response:
        """Durable frames of the user's chat stream after ``after``, oldest first."""
        wanted = limit or sync_default_limit
        with DB_SECONDS.labels("sync_read").time():
            async with pool.acquire() as conn:
                rows = await storage.read_stream(
                    conn, user_id=user_id, after_seq=after, limit=wanted
                )
        page = rows[:wanted]
        body = orjson.dumps(
            {
                "stream": "chat",
                "events": [orjson.Fragment(frame) for _, frame in page],
                "last_seq": page[-1][0] if page else after,
                "has_more": len(rows) > wanted,
            }
        )
        return Response(body, media_type=JSON)

    return app
