"""A fake Web Push service for tests: a real HTTP server on 127.0.0.1 (ephemeral port).

It checks what a real push service checks and what a browser relies on:

- the VAPID ``Authorization`` (RFC 8292): ``vapid t=<JWT>, k=<key>``, the ES256 signature made
  with ``k``'s private half, ``k`` equal to the application server key the subscription was made
  with, ``aud`` equal to this service's origin, ``exp`` in the future and at most 24 h ahead,
  ``sub`` a mailto: or https: URL;
- the body: ``Content-Encoding: aes128gcm``, decrypted with the subscription's private key and
  auth secret by ``http_ece`` (RFC 8291), JSON inside;
- ``TTL`` present, ``Urgency`` one of RFC 8030's values, ``Topic`` at most 32 base64url chars.

A request that fails a check is answered 400/401/403 and its reason kept in ``rejected``; tests
assert that list stays empty. Every valid request is recorded in ``received`` (headers and the
decrypted JSON) and answered as scripted per endpoint: a status (201 by default; 404, 410,
429 with Retry-After, 500, ...) or a hang that lasts until the service stops.

``BrowserSubscription`` is what a browser's ``PushManager.subscribe`` makes: a P-256 key pair and
a 16-byte auth secret, with ``to_json()`` shaped like ``PushSubscription.toJSON()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import http_ece
import orjson
import uvicorn
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.notifier.domain.push import b64url_decode, b64url_encode
from services.runtime.lifecycle import QuietServer
from services.runtime.migrations import apply_migrations

UNIT_S = float(os.environ.get("TEST_TIMEOUT_SCALE", "1"))
MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "notifier" / "migrations"
_AUTH = re.compile(r"^vapid\s+(.+)$", re.IGNORECASE)
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_URGENCIES = frozenset({"very-low", "low", "normal", "high"})


@dataclass(frozen=True)
class BrowserSubscription:
    """A browser's side of a push subscription."""

    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    @classmethod
    def create(cls, endpoint: str) -> BrowserSubscription:
        return cls(endpoint, ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    def to_json(self) -> dict[str, Any]:
        """As ``PushSubscription.toJSON()``."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(self.p256dh), "auth": b64url_encode(self.auth)},
        }


@dataclass(frozen=True)
class Answer:
    """How the service answers one request: a status (with Retry-After), or a hang."""

    status: int = 201
    retry_after: str | None = None
    hang: bool = False


HANG = Answer(hang=True)


@dataclass(frozen=True)
class ReceivedPush:
    """A valid push request as the service saw it, and how it answered."""

    endpoint: str
    ttl: int
    urgency: str | None
    topic: str | None
    payload: dict[str, Any]
    payload_bytes: int
    answer: Answer
    # When the request arrived (wall clock, seconds since the epoch).
    arrived_at: float


@dataclass
class FakePushService:
    """The fake push service (see the module docstring).

    Args:
        vapid_public_key: the application server key subscriptions are made with (base64url).
        verify: False accepts any endpoint and skips the VAPID and decryption checks, recording
            nothing (benchmarks measuring the sender, not this service).
    """

    vapid_public_key: str
    verify: bool = True
    received: list[ReceivedPush] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    hanging: int = 0
    answered: int = 0
    _subscriptions: dict[str, BrowserSubscription] = field(default_factory=dict)
    _scripts: dict[str, list[Answer]] = field(default_factory=dict)
    _release: asyncio.Event = field(default_factory=asyncio.Event)
    _server: QuietServer | None = None
    _task: asyncio.Task[None] | None = None
    _port: int = 0

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    async def start(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        app = Starlette(routes=[Route("/push/{token}", self._handle, methods=["POST"])])
        self._server = QuietServer(
            uvicorn.Config(app, log_config=None, access_log=False, lifespan="off")
        )
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        await until(lambda: self._server is not None and self._server.started, 10 * UNIT_S)

    async def stop(self) -> None:
        """Release hanging requests and shut the server down."""
        self._release.set()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def subscribe(self) -> BrowserSubscription:
        """A new endpoint on this service, with the browser's keys."""
        subscription = BrowserSubscription.create(f"{self.origin}/push/{uuid.uuid4().hex}")
        self._subscriptions[subscription.endpoint] = subscription
        return subscription

    def script(self, endpoint: str, *answers: Answer) -> None:
        """Answer the next requests to ``endpoint`` so, in order; the last answer repeats."""
        self._scripts[endpoint] = list(answers)

    def pushes_to(self, endpoint: str) -> list[ReceivedPush]:
        return [push for push in self.received if push.endpoint == endpoint]

    def delivered(self) -> list[ReceivedPush]:
        """Pushes answered with a 2xx."""
        return [
            push
            for push in self.received
            if not push.answer.hang and 200 <= push.answer.status < 300
        ]

    async def _handle(self, request: Request) -> Response:
        arrived_at = time.time()
        endpoint = f"{self.origin}/push/{request.path_params['token']}"
        body = await request.body()
        answer = self._next_answer(endpoint)
        if self.verify:
            subscription = self._subscriptions.get(endpoint)
            if subscription is None:
                return Response(status_code=404)
            try:
                push = self._verify(request, body, subscription, answer, arrived_at)
            except _Refused as refused:
                self.rejected.append(refused.reason)
                return Response(status_code=refused.status)
            self.received.append(push)
        if answer.hang:
            self.hanging += 1
            try:
                await self._release.wait()
            finally:
                self.hanging -= 1
            return Response(status_code=503)
        self.answered += 1
        headers = {} if answer.retry_after is None else {"Retry-After": answer.retry_after}
        return Response(status_code=answer.status, headers=headers)

    def _next_answer(self, endpoint: str) -> Answer:
        script = self._scripts.get(endpoint)
        if not script:
            return Answer()
        return script.pop(0) if len(script) > 1 else script[0]

    def _verify(
        self,
        request: Request,
        body: bytes,
        subscription: BrowserSubscription,
        answer: Answer,
        arrived_at: float,
    ) -> ReceivedPush:
        self._verify_vapid(request.headers.get("authorization", ""))
        if request.headers.get("content-encoding") != "aes128gcm":
            raise _Refused(400, "content-encoding")
        ttl = request.headers.get("ttl", "")
        if not ttl.isdigit():
            raise _Refused(400, "ttl")
        urgency = request.headers.get("urgency")
        if urgency is not None and urgency not in _URGENCIES:
            raise _Refused(400, "urgency")
        topic = request.headers.get("topic")
        if topic is not None and not _TOPIC.match(topic):
            raise _Refused(400, "topic")
        try:
            plaintext: bytes = http_ece.decrypt(
                body,
                private_key=subscription.private_key,
                auth_secret=subscription.auth,
                version="aes128gcm",
            )
            payload = orjson.loads(plaintext)
        except (http_ece.ECEException, orjson.JSONDecodeError, ValueError) as exc:
            raise _Refused(400, f"decrypt:{type(exc).__name__}") from exc
        return ReceivedPush(
            endpoint=subscription.endpoint,
            ttl=int(ttl),
            urgency=urgency,
            topic=topic,
            payload=payload,
            payload_bytes=len(plaintext),
            answer=answer,
            arrived_at=arrived_at,
        )

    def _verify_vapid(self, authorization: str) -> None:
        match = _AUTH.match(authorization)
        if match is None:
            raise _Refused(401, "vapid:scheme")
        params = dict(
            part.strip().split("=", 1) for part in match.group(1).split(",") if "=" in part
        )
        token, key = params.get("t"), params.get("k")
        if not token or not key:
            raise _Refused(401, "vapid:params")
        if key != self.vapid_public_key:
            raise _Refused(403, "vapid:key_mismatch")
        header = orjson.loads(b64url_decode(token.split(".", 1)[0]))
        if header.get("alg") != "ES256" or header.get("typ") != "JWT":
            raise _Refused(401, "vapid:header")
        try:
            claims = vapid_jwt.decode(token, key)
        except InvalidSignature as exc:
            raise _Refused(401, "vapid:signature") from exc
        now = time.time()
        if claims.get("aud") != self.origin:
            raise _Refused(401, "vapid:aud")
        exp = claims.get("exp")
        if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
            raise _Refused(401, "vapid:exp")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https://")):
            raise _Refused(401, "vapid:sub")


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def until(predicate: Callable[[], bool], timeout_s: float) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def fresh_push_database(admin_url: str) -> AsyncIterator[str]:
    """A database of its own with the notifier's migrations applied (schema ``notifier``),
    dropped afterwards: push workers claim every due job of their database, so tests keep
    theirs away from any notifier process other tests run."""
    name = f"push_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, schema="notifier", directory=MIGRATIONS)
    finally:
        await conn.close()
    try:
        yield url
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
