"""The internal HTTP pieces every service's FastAPI app shares: health, metrics, the token, and
the read route of the per-user streams a service owns (what gateways call for ``sync``).

``/healthz``, ``/readyz`` and ``/metrics`` answer anyone who reaches the listener (probes and
Prometheus; the listener is loopback unless the deployment opens it); the internal APIs require
``X-Internal-Token``.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response

from schemas.frames import MAX_SYNC_LIMIT
from services.runtime.health import METRICS_CONTENT_TYPE, Readiness, metrics_body
from services.runtime.metrics import DB_SECONDS
from services.runtime.streams import Stream

JSON = "application/json"


def internal_app(*, title: str, readiness: Readiness, internal_token: str | None) -> FastAPI:
    """A FastAPI app with ``/healthz``, ``/readyz`` and ``/metrics`` and no public docs.

    Routes that serve other services depend on :func:`require_internal_token`;
    ``internal_token`` is None only when the deployment disabled internal auth.
    """
    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
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

    return app


def require_internal_token(
    request: Request, x_internal_token: Annotated[str | None, Header()] = None
) -> None:
    """FastAPI dependency: callers must present the token (unless the deployment disabled
    internal auth, when ``internal_app`` got None). Compared in constant time, so the time
    of a refusal tells nothing about how much of a guess was right.

    Raises:
        HTTPException: 401 without the right ``X-Internal-Token``.
    """
    expected: str | None = request.app.state.internal_token
    if expected is None:
        return
    presented = (x_internal_token or "").encode()
    if not hmac.compare_digest(presented, expected.encode()):
        raise HTTPException(status_code=401, detail="internal token required")


def add_stream_route(
    app: FastAPI, *, streams: Sequence[Stream], pool: asyncpg.Pool, default_limit: int
) -> None:
    """Serve ``GET /internal/v1/streams/{stream}/{user_id}?after=&limit=`` for ``streams``.

    Gateways call it on behalf of an authenticated user, so the user id in the path is trusted
    only as far as the gateway is (and the internal token, when set, is required). The answer:
    ``{"stream", "events": [frames, oldest first], "last_seq", "has_more"}``, the frames byte
    for byte as stored; ``last_seq`` is ``after`` when nothing is new. An unknown stream is 404.
    """
    by_name = {stream.name: stream for stream in streams}

    @app.get(
        "/internal/v1/streams/{stream}/{user_id}", dependencies=[Depends(require_internal_token)]
    )
    async def read_stream(
        stream: str,
        user_id: str,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1, le=MAX_SYNC_LIMIT)] = None,
    ) -> Response:
        """Durable frames of the user's stream after ``after``, oldest first."""
        owned = by_name.get(stream)
        if owned is None:
            return Response(b'{"error":"unknown stream"}', status_code=404, media_type=JSON)
        wanted = limit or default_limit
        with DB_SECONDS.labels("sync_read").time():
            async with pool.acquire() as conn:
                rows = await owned.read(conn, user_id=user_id, after_seq=after, limit=wanted)
        page = rows[:wanted]
        body = orjson.dumps(
            {
                "stream": stream,
                "events": [orjson.Fragment(frame) for _, frame in page],
                "last_seq": page[-1][0] if page else after,
                "has_more": len(rows) > wanted,
            }
        )
        return Response(body, media_type=JSON)
