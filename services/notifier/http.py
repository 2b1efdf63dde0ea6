"""Internal HTTP API of the notifier: the bell's reads for gateways (beside the runtime's health,
readiness, metrics and the ``notifications`` stream's sync route).

Gateways answer ``notifications.list`` and ``notification.prefs.get`` from these (reads need no
trip through Kafka and never wait behind a backlog of job alerts on the user's partition); both
run under Row Level Security as the requesting user.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import orjson
from fastapi import Depends, FastAPI, Query, Response

from schemas.frames import DEFAULT_NOTIFICATIONS_LIMIT, MAX_NOTIFICATIONS_LIMIT, NotificationId
from services.notifier import storage
from services.runtime.http import JSON, require_internal_token
from services.runtime.metrics import DB_SECONDS


def add_routes(app: FastAPI, *, pool: asyncpg.Pool) -> None:
    """Add the bell's reads to the service's internal app."""

    @app.get("/internal/v1/notifications/{user_id}", dependencies=[Depends(require_internal_token)])
    async def list_notifications(
        user_id: str,
        before: Annotated[NotificationId | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_NOTIFICATIONS_LIMIT)] = (
            DEFAULT_NOTIFICATIONS_LIMIT
        ),
        unread_only: bool = False,
    ) -> Response:
        """``{"notifications": [...newest first], "unread_count", "has_more"}``; 404 with
        ``{"code": "not_found", "message"}`` (what the client is answered) when ``before`` is
        not one of the user's notifications."""
        try:
            with DB_SECONDS.labels("notifications_read").time():
                async with pool.acquire() as conn:
                    page = await storage.list_notifications(
                        conn,
                        user_id=user_id,
                        before=before,
                        limit=limit,
                        unread_only=unread_only,
                    )
        except storage.UnknownNotification:
            refusal = b'{"code":"not_found","message":"before: no such notification"}'
            return Response(refusal, status_code=404, media_type=JSON)
        body = orjson.dumps(
            {
                "notifications": page.notifications,
                "unread_count": page.unread_count,
                "has_more": page.has_more,
            },
            option=orjson.OPT_UTC_Z,
        )
        return Response(body, media_type=JSON)

    @app.get(
        "/internal/v1/notification-prefs/{user_id}", dependencies=[Depends(require_internal_token)]
    )
    async def read_prefs(user_id: str) -> Response:
        """``{"prefs": {...}}``: every preference of the user, defaults filled in."""
        with DB_SECONDS.labels("notifications_read").time():
            async with pool.acquire() as conn:
                prefs = await storage.read_prefs(conn, user_id=user_id)
        return Response(orjson.dumps({"prefs": prefs.to_dict()}), media_type=JSON)
