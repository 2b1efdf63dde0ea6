"""The internal HTTP pieces every service's FastAPI app shares: health, metrics, the token."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import FastAPI, Header, HTTPException, Request, Response

from services.runtime.health import METRICS_CONTENT_TYPE, Readiness, metrics_body

JSON = "application/json"


def internal_app(*, title: str, readiness: Readiness, internal_token: str | None) -> FastAPI:
    """A FastAPI app with ``/healthz``, ``/readyz`` and ``/metrics`` and no public docs.

    Routes that serve other services depend on :func:`require_internal_token`.
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
    """FastAPI dependency: when a token is configured, callers must present it.

    Raises:
        HTTPException: 401 without the right ``X-Internal-Token``.
    """
    expected: str | None = request.app.state.internal_token
    if expected is not None and x_internal_token != expected:
        raise HTTPException(status_code=401, detail="internal token required")
