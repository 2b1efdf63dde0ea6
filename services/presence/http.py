"""Internal HTTP API of the presence service: presence reads for gateways, health, metrics.

Both reads run under Row Level Security as the requesting user: only users who share a
conversation with the requester are ever returned.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response

from services.presence import storage
from services.presence.handlers import presence_frame
from services.runtime.health import METRICS_CONTENT_TYPE, Readiness, metrics_body

JSON = "application/json"
_MAX_IDS = 500


def _check_token(
    request: Request, x_internal_token: Annotated[str | None, Header()] = None
) -> None:
    expected: str | None = request.app.state.internal_token
    if expected is not None and x_internal_token != expected:
        raise HTTPException(status_code=401, detail="internal token required")


def build_http_app(
    *,
    pool: asyncpg.Pool,
    readiness: Readiness,
    internal_token: str | None,
    now: Callable[[], datetime],
) -> FastAPI:
    """The FastAPI app of the presence service."""
    app = FastAPI(title="presence (internal)", docs_url=None, redoc_url=None, openapi_url=None)
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

    @app.get("/internal/v1/presence", dependencies=[Depends(_check_token)])
    async def read_presence(
        requester: Annotated[str, Query(min_length=1, max_length=128)],
        ids: Annotated[str | None, Query()] = None,
    ) -> Response:
        """``presence`` frames of the requester's contacts: all, or those among ``ids``."""
        wanted = None if ids is None else [user for user in ids.split(",") if user][:_MAX_IDS]
        async with pool.acquire() as conn:
            states = await storage.visible_presence(conn, requester=requester, user_ids=wanted)
        at = now()
        frames = [presence_frame(state, now=at).to_dict() for state in states]
        return Response(orjson.dumps({"presence": frames}), media_type=JSON)

    return app
