"""The development page: the SDK demo under ``/dev/``, and development tokens. OFF by default.

``GATEWAY_DEV_PAGE=1`` serves the demo (``clients/js/demo``, ``dist-demo``) and the built SDK
(``clients/js/dist``) from the gateway's own origin, so the page, its WebSocket and the site's
session cookie share one origin as on the real site, and no other process is needed.
``GATEWAY_DEV_TOKENS=1`` also answers ``GET /dev/token?sub=<user>`` with a token for ANY user:
development only (``make up`` turns both on for the local stack; a deployment never should).

    /dev/            -> demo/index.html
    /dev/sw.js       -> dist/sw.js (the push service worker, scoped to /dev/)
    /dev/token       -> {"token": ...}   (404 unless dev tokens are on)
    /dev/<dir>/<f>   -> clients/js/<dir>/<f> for dir in dist, dist-demo, demo
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

from services.gateway.domain.auth import mint_token
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

PREFIX = "/dev"
TOKEN_TTL_S = 3600
_SERVED_DIRS = ("dist", "dist-demo", "demo")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".map": "application/json",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}

#: Mints a token: (user id, expires at in epoch seconds) -> token.
Minter = Callable[[str, int], str]


class DevPage:
    """Answers ``/dev`` requests from files under ``root`` (``clients/js``).

    Args:
        root: the SDK's folder (built: ``dist/`` and ``dist-demo/`` exist after ``npm run
            build``).
        mint: issues development tokens; None leaves ``/dev/token`` at 404.
        now: wall clock in epoch seconds (token expiry).
    """

    def __init__(self, *, root: Path, mint: Minter | None, now: Callable[[], float] = time.time):
        self._root = root.resolve()
        self._mint = mint
        self._now = now

    def respond(self, target: str) -> Response:
        """The answer to ``GET <target>`` where target's path is ``/dev`` or under it."""
        split = urlsplit(target)
        path = split.path
        if path == PREFIX:
            return _response(HTTPStatus.PERMANENT_REDIRECT, b"", "text/plain", location="/dev/")
        relative = path.removeprefix(PREFIX + "/")
        if relative == "token":
            return self._token(parse_qs(split.query).get("sub", [""])[0])
        if relative == "":
            return self._file(self._root / "demo" / "index.html")
        if relative == "sw.js":
            return self._file(self._root / "dist" / "sw.js")
        directory, _, rest = relative.partition("/")
        if directory not in _SERVED_DIRS or not rest:
            return _not_found()
        base = (self._root / directory).resolve()
        candidate = (base / rest).resolve()
        if not candidate.is_relative_to(base):
            return _not_found()
        return self._file(candidate)

    def _token(self, user_id: str) -> Response:
        if self._mint is None:
            return _not_found()
        if not 1 <= len(user_id) <= 128:
            body = b'{"error":"sub: 1..128 characters"}'
            return _response(HTTPStatus.BAD_REQUEST, body, "application/json")
        token = self._mint(user_id, int(self._now()) + TOKEN_TTL_S)
        return _response(HTTPStatus.OK, orjson.dumps({"token": token}), "application/json")

    def _file(self, path: Path) -> Response:
        content_type = _CONTENT_TYPES.get(path.suffix)
        if content_type is None or not path.is_file():
            return _not_found()
        return _response(HTTPStatus.OK, path.read_bytes(), content_type)


def dev_page_from_settings(settings: GatewaySettings) -> DevPage | None:
    """The development page when ``GATEWAY_DEV_PAGE`` is on (with tokens when
    ``GATEWAY_DEV_TOKENS`` is too), else None."""
    if not settings.gateway_dev_page:
        return None
    log.warning("development page on: /dev/ (GATEWAY_DEV_PAGE)")
    mint: Minter | None = None
    if settings.gateway_dev_tokens:
        log.warning("development tokens on: /dev/token mints a token for any user")

        def mint(user_id: str, expires_at: int) -> str:
            return mint_token(
                secret=settings.auth_secret,
                user_id=user_id,
                expires_at=expires_at,
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
            )

    return DevPage(root=settings.gateway_dev_root, mint=mint)


def _not_found() -> Response:
    return _response(HTTPStatus.NOT_FOUND, b'{"error":"not found"}', "application/json")


def _response(
    status: HTTPStatus, body: bytes, content_type: str, *, location: str | None = None
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            # A development page changes with every build; tokens must never be cached.
            ("Cache-Control", "no-store"),
            ("Connection", "close"),
        ]
    )
    if location is not None:
        headers["Location"] = location
    return Response(status.value, status.phrase, headers, body)
