"""Internal HTTP API of the presence service: presence reads for gateways (beside the runtime's
health, readiness and metrics).

Both reads run under Row Level Security as the requesting user: only users who share a
conversation with the requester are ever returned.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Query, Response

from services.presence import storage
from services.presence.handlers import presence_frame
from services.runtime.http import JSON, require_internal_token
from services.runtime.metrics import DB_SECONDS

_MAX_IDS = 500


def add_routes(app: FastAPI, *, pool: asyncpg.Pool, now: Callable[[], datetime]) -> None:
    """Add the presence reads to the service's internal app."""

    @app.get("/internal/v1/presence", dependencies=[Depends(require_internal_token)])
    async def read_presence(
        requester: Annotated[str, Query(min_length=1, max_length=128)],
        ids: Annotated[str | None, Query()] = None,
    ) -> Response:
        """``presence`` frames of the requester's contacts: all, or those among ``ids``."""
        wanted = None if ids is None else [user for user in ids.split(",") if user][:_MAX_IDS]
        with DB_SECONDS.labels("presence_read").time():
            async with pool.acquire() as conn:
                states = await storage.visible_presence(conn, requester=requester, user_ids=wanted)
        at = now()
        frames = [presence_frame(state, now=at).to_dict() for state in states]
        return Response(orjson.dumps({"presence": frames}), media_type=JSON)
