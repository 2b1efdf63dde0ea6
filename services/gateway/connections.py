"""The WebSocket endpoint: upgrade checks, ``hello``, and the per-connection frame loop.

    HTTP request --process_request--> health/metrics | /dev/ (when on) |
                                      GET /v1/push/vapid-public-key | 404
                                      | 429/503 (admission) | 401/403 | GET /v1/presence
                                      | upgrade (the principal kept on its connection)
    upgrade --handle--> registry.add, oldest of the user's beyond the limit closed (4010),
                        delivery.hold(partition), hello, presence snapshot, connection.opened
        frame loop: rate limit -> parse -> ROUTES[frame type] (services/gateway/routes.py)
        end: registry.remove, connection.closed

Requests that go to Kafka (message.send, receipt, presence.set, typing) are answered by the
service that applied them, through the delivery topic; the gateway answers only what it
decides itself (malformed frames, rate limits, ping, sync, Kafka unavailable).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from aiokafka.errors import KafkaError
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from schemas.frames import (
    CONVERSATIONS_PAGE,
    HISTORY_PAGE,
    MAX_EMOJI_CHARS,
    MAX_GROUP_MEMBERS,
    MAX_QUERY_CHARS,
    MAX_REACTION_KINDS,
    MAX_TITLE_CHARS,
    SEARCH_PAGE,
    Hello,
    HelloPush,
    Limits,
)
from services.gateway.admission import Admission
from services.gateway.delivery import DeliveryTail
from services.gateway.devpage import PREFIX as DEV_PREFIX, DevPage
from services.gateway.domain import commands
from services.gateway.domain.auth import SUBPROTOCOL, Principal, authenticate
from services.gateway.domain.commands import Requester
from services.gateway.domain.errors import AuthError, FrameError, UpstreamUnavailable
from services.gateway.domain.frames import parse_client_frame
from services.gateway.domain.ratelimit import RateLimiter, Verdict
from services.gateway.domain.registry import Registry
from services.gateway.metrics import CONNECTIONS, FRAMES_IN_BY_TYPE, UPGRADES_REFUSED
from services.gateway.presence import PresenceClient
from services.gateway.routes import ROUTES, Upstream, served_frame_types
from services.gateway.session import (
    CLOSE_RATE_ABUSE,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TRY_AGAIN_LATER,
    GatewayConnection,
    Session,
)
from services.gateway.settings import GatewaySettings
from services.runtime.health import METRICS_CONTENT_TYPE, Readiness, metrics_body
from services.runtime.lifecycle import new_id
from services.runtime.metrics import ERRORS

log = logging.getLogger(__name__)

WS_PATH = "/v1/ws"
PRESENCE_PATH = "/v1/presence"
VAPID_KEY_PATH = "/v1/push/vapid-public-key"
_MAX_PRESENCE_IDS = 500


class Endpoint:
    """Everything a connection needs, built once by the composition root.

    Args:
        settings: gateway settings.
        registry: sessions of this gateway.
        delivery: the delivery tail (``hold`` before hello).
        upstream: where frames go: the command publisher and the streams' owners.
        presence: reads presence (snapshot after hello, the HTTP read API).
        readiness: checks behind ``/readyz``.
        admission: connection and handshake limits.
        now: wall clock (token expiry, server_time).
        dev_page: the development page under ``/dev/`` (None: off, the default).
    """

    def __init__(
        self,
        *,
        settings: GatewaySettings,
        registry: Registry[Session],
        delivery: DeliveryTail,
        upstream: Upstream,
        presence: PresenceClient,
        readiness: Readiness,
        admission: Admission,
        now: Callable[[], datetime],
        dev_page: DevPage | None = None,
    ) -> None:
        self._settings = settings
        self._dev_page = dev_page
        self._allowed_origins = settings.allowed_origins()
        self._registry = registry
        self._delivery = delivery
        self._upstream = upstream
        self._presence = presence
        self._readiness = readiness
        self._admission = admission
        self._now = now
        self._limits = Limits(
            max_frame_bytes=settings.max_frame_bytes,
            max_body_chars=settings.max_body_chars,
            rate_per_s=settings.rate_per_s,
            max_group_members=MAX_GROUP_MEMBERS,
            max_title_chars=MAX_TITLE_CHARS,
            max_emoji_chars=MAX_EMOJI_CHARS,
            max_reaction_kinds=MAX_REACTION_KINDS,
            max_query_chars=MAX_QUERY_CHARS,
            max_conversations_page=CONVERSATIONS_PAGE[1],
            max_history_page=HISTORY_PAGE[1],
            max_search_page=SEARCH_PAGE[1],
        )
        key = settings.vapid_public_key
        self._push = None if key is None else HelloPush(vapid_public_key=key)
        self._features = served_frame_types()

    # -- HTTP, before the upgrade -------------------------------------------------------

    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer health and metrics; authenticate upgrades (keeping the principal on the
        connection, see :class:`GatewayConnection`); refuse everything else."""
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return _response(HTTPStatus.OK, b'{"status":"ok"}', "application/json")
        if path == "/readyz":
            ready, checks = await self._readiness.evaluate()
            body = orjson.dumps({"ready": ready, "checks": checks})
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            return _response(status, body, "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, metrics_body(), METRICS_CONTENT_TYPE)
        if self._dev_page is not None and (path == DEV_PREFIX or path.startswith(DEV_PREFIX + "/")):
            return self._dev_page.respond(request.path)
        if path == VAPID_KEY_PATH:
            return self._vapid_public_key()
        if path not in (WS_PATH, PRESENCE_PATH):
            return _response(HTTPStatus.NOT_FOUND, b'{"error":"not found"}', "application/json")
        refusal = self._admission.refuse_handshake(connection, request, upgrade=path == WS_PATH)
        if refusal is not None:
            return refusal
        try:
            principal = authenticate(
                origin=request.headers.get("Origin"),
                authorization=request.headers.get("Authorization"),
                subprotocol_headers=request.headers.get_all("Sec-WebSocket-Protocol"),
                allowed_origins=self._allowed_origins,
                secret=self._settings.auth_secret,
                now=self._now().timestamp(),
                issuer=self._settings.auth_issuer,
                audience=self._settings.auth_audience,
                cookie_headers=request.headers.get_all("Cookie"),
            )
        except AuthError as exc:
            UPGRADES_REFUSED.labels(str(exc.status)).inc()
            body = orjson.dumps({"error": exc.reason})
            return _response(HTTPStatus(exc.status), body, "application/json")
        if path == PRESENCE_PATH:
            return await self._read_presence(principal, request.path)
        if not isinstance(connection, GatewayConnection):
            raise TypeError("the server must create GatewayConnections")
        connection.principal = principal
        return None

    async def _read_presence(self, principal: Principal, target: str) -> Response:
        """``GET /v1/presence?ids=a,b``: presence of those users the caller shares a
        conversation with (others are left out, not refused: their existence is not revealed)."""
        query = parse_qs(urlsplit(target).query)
        ids = [user for value in query.get("ids", []) for user in value.split(",") if user]
        if not ids or len(ids) > _MAX_PRESENCE_IDS:
            body = orjson.dumps({"error": f"ids: 1..{_MAX_PRESENCE_IDS} comma-separated user ids"})
            return _response(HTTPStatus.BAD_REQUEST, body, "application/json")
        try:
            frames = await self._presence.visible(requester=principal.user_id, user_ids=ids)
        except UpstreamUnavailable:
            body = b'{"error":"presence unavailable"}'
            return _response(HTTPStatus.SERVICE_UNAVAILABLE, body, "application/json")
        return _response(HTTPStatus.OK, orjson.dumps({"presence": frames}), "application/json")

    def _vapid_public_key(self) -> Response:
        """``GET /v1/push/vapid-public-key``: the key browsers subscribe with. Public by nature,
        so no token and any origin (a page may fetch it before it connects); 404 when this
        deployment offers no Web Push."""
        if self._push is None:
            body = b'{"error":"web push is not configured"}'
            return _response(HTTPStatus.NOT_FOUND, body, "application/json")
        response = _response(HTTPStatus.OK, self._push.to_wire(), "application/json")
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    def select_subprotocol(
        self, connection: ServerConnection, subprotocols: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        """Select ``chat.v1`` when offered; a header-authenticated client may offer none."""
        return Subprotocol(SUBPROTOCOL) if SUBPROTOCOL in subprotocols else None

    # -- WebSocket ------------------------------------------------------------------------

    async def handle(self, websocket: ServerConnection) -> None:
        """Serve one connection from hello to close."""
        principal = websocket.principal if isinstance(websocket, GatewayConnection) else None
        if principal is None:  # process_request always sets it before an upgrade
            await websocket.close(1011, "no principal")
            return
        if self._admission.over_capacity():
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "gateway full; try again later")
            return
        session = Session(
            websocket=websocket,
            principal=principal,
            connection_id=new_id(),
            limiter=RateLimiter(
                rate_per_s=self._settings.rate_per_s,
                burst=self._settings.rate_burst,
                abuse_limit=self._settings.rate_abuse_limit,
            ),
            queue_limit=self._settings.send_queue_frames,
        )
        partition = self._registry.add(session)
        CONNECTIONS.inc()
        self._admission.evict_oldest(session)
        expiry = asyncio.get_running_loop().call_later(
            max(principal.expires_at - self._now().timestamp(), 0),
            session.close,
            CLOSE_TOKEN_EXPIRED,
            "token expired",
        )
        try:
            await self._delivery.hold(partition)
            hello = Hello(
                user_id=principal.user_id,
                connection_id=session.connection_id,
                heartbeat_s=self._settings.heartbeat_s,
                server_time=self._now(),
                features=self._features,
                limits=self._limits,
                push=self._push,
            )
            # Ahead of any delivery frame the tail handed the session while it was held.
            session.start("hello", hello.to_wire())
            await self._send_presence_snapshot(session)
            await self._tell_presence(session, opened=True)
            async for message in websocket:
                await self._on_frame(session, message)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            if session.pending:
                self._upstream.shedder.forget(session.connection_id, session.pending)
            self._registry.remove(session)
            CONNECTIONS.dec()
            await self._tell_presence(session, opened=False)

    async def _send_presence_snapshot(self, session: Session) -> None:
        """The presence of everyone the user shares a conversation with, right after hello."""
        try:
            frames = await self._presence.visible(requester=session.user_id, user_ids=None)
        except UpstreamUnavailable:
            # Chat works without presence: the client sees statuses once the service is back.
            ERRORS.labels("presence_snapshot_unavailable").inc()
            return
        for frame in frames:
            session.send("presence", orjson.dumps(frame))

    async def _tell_presence(self, session: Session, *, opened: bool) -> None:
        """Publish connection opened/closed; a failure is logged (the heartbeat expiry and the
        next open repair presence), never allowed to break the connection's own handling."""
        publisher = self._upstream.publisher
        connection = Requester(session.user_id, session.connection_id, publisher.gateway_id)
        event = commands.connection_opened if opened else commands.connection_closed
        try:
            await publisher.publish(event(connection))
        except KafkaError as exc:
            ERRORS.labels("presence_publish_failed").inc()
            log.warning("presence event not published", extra={"error": type(exc).__name__})

    async def _on_frame(self, session: Session, message: str | bytes) -> None:
        verdict = session.limiter.check(time.monotonic())
        if verdict is Verdict.CLOSE:
            session.close(CLOSE_RATE_ABUSE, "rate limit ignored")
            return
        if isinstance(message, bytes):
            FRAMES_IN_BY_TYPE["binary"].inc()
            session.refuse(None, "bad_request", "binary frames are not supported")
            return
        try:
            frame = parse_client_frame(message, max_body_chars=self._settings.max_body_chars)
        except FrameError as exc:
            FRAMES_IN_BY_TYPE["invalid"].inc()
            session.refuse(exc.request_id, exc.code, exc.message)
            return
        FRAMES_IN_BY_TYPE[frame.type].inc()
        if verdict is Verdict.LIMIT:
            session.refuse(frame.id, "rate_limited", "too many frames; slow down")
            return
        await ROUTES[frame.type](self._upstream, session, frame)

    async def close_all(self, code: int, reason: str) -> None:
        """Close every connection (shutdown): queued frames are flushed first, within bounds."""
        sessions = self._registry.sessions()
        await asyncio.gather(*(session.flush() for session in sessions))
        for session in sessions:
            session.close(code, reason)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)
