"""Internal HTTP API of the chat service: the ``chat`` stream for gateways' sync, health,
metrics (the route is the runtime's, :func:`services.runtime.http.add_stream_route`)."""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from services.chat import storage
from services.runtime.health import Readiness
from services.runtime.http import add_stream_route, internal_app


def build_http_app(
    *, pool: asyncpg.Pool, readiness: Readiness, internal_token: str | None, sync_default_limit: int
) -> FastAPI:
    """The FastAPI app of the chat service."""
    app = internal_app(title="chat (internal)", readiness=readiness, internal_token=internal_token)
    add_stream_route(app, streams=[storage.STREAM], pool=pool, default_limit=sync_default_limit)
    return app
