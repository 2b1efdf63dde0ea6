"""Internal HTTP API of the chat service: sync for gateways, health, metrics.

Not exposed to browsers: gateways call ``/internal/v1/streams/chat/{user_id}`` on behalf of an
authenticated user, so the user id in the path is trusted only as far as the gateway is.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response

from services.chat import storage
from services.runtime.health import METRICS_CONTENT_TYPE, Readiness, metrics_body

JSON = "application/json"


def _pool(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool
    return pool


def _check_token(
    request: Request, x_internal_token: Annotated[str | None, Header()] = None
) -> None:
    expected: str | None = request.app.state.internal_token
    if expected is not None and x_internal_token != expected:
        raise HTTPException(status_code=401, detail="internal token required")


def build_http_app(
    *, pool: asyncpg.Pool, readiness: Readiness, internal_token: str | None, sync_default_limit: int
) -> FastAPI:
    """The FastAPI app; dependencies come from ``app.state`` set here."""
    app = FastAPI(title="chat (internal)", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.pool = pool
    app.state.internal_token = internal_token

    @app.get("/healthz")
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @app.get("/readyz")
    async def readyz() -> Response:
        ready, checks = await readiness.evaluate()
        body = orjson.dumps({"ready": ready, "checks": checks})
        return Response(body, status_code=200 if ready else 503, media_type=JSON)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(metrics_body(), media_type=METRICS_CONTENT_TYPE)

    @app.get("/internal/v1/streams/chat/{user_id}", dependencies=[Depends(_check_token)])
    async def read_stream(
        user_id: str,
        pool: Annotated[asyncpg.Pool, Depends(_pool)],
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
    ) -> Response:
        """Durable frames of the user's chat stream after ``after``, oldest first."""
        wanted = limit or sync_default_limit
        async with pool.acquire() as conn:
            rows = await storage.read_stream(conn, user_id=user_id, after_seq=after, limit=wanted)
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
