"""Sending one push: RFC 8291 encryption, RFC 8292 VAPID, RFC 8030 delivery over aiohttp.

Libraries, as they are meant to be used (docs/notifications.md, "Web Push", has the measurements
behind the choice): ``http_ece`` encrypts (aes128gcm, one record, a fresh ephemeral P-256 key and
salt per push, as RFC 8291 requires); ``py-vapid`` signs the ES256 JWT; aiohttp sends, with the
worker's bounded concurrency (measured at a tenth of httpx's CPU per request here, which made
httpx the bound of the whole push path). No crypto primitive is written here.

A VAPID token depends only on the push service's origin and its expiry, not on the push, so one
signature per origin serves every push for hours (RFC 8292 allows up to 24 h; we sign for 12 h
and renew an hour early): the per-push cost is the encryption alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import http_ece
from cryptography.hazmat.primitives.asymmetric import ec

from services.notifier.domain.push import PushHeaders, TransportError
from services.notifier.vapid import VapidKey

#: How long a VAPID token is signed for (RFC 8292: at most 24 h) and how early it is renewed.
TOKEN_LIFETIME = timedelta(hours=12)
TOKEN_RENEW_BEFORE = timedelta(hours=1)


def encrypt(payload: bytes, *, p256dh: bytes, auth: bytes) -> bytes:
    """The aes128gcm body of a push (RFC 8291): a new ephemeral ECDH key and salt every time.

    ``http_ece`` draws the salt; the ephemeral key is drawn here because RFC 8291 wants one per
    message, and its public half travels in the body's header (keyid).
    """
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    body: bytes = http_ece.encrypt(
        payload, private_key=ephemeral, dh=p256dh, auth_secret=auth, version="aes128gcm"
    )
    return body


class VapidSigner:
    """``Authorization: vapid t=<JWT>,k=<public key>`` per push service origin, cached.

    Args:
        key: the application server's VAPID key pair.
        subject: ``sub`` claim, a mailto: or https: contact URL.
    """

    def __init__(self, key: VapidKey, subject: str) -> None:
        self._key = key
        self._subject = subject
        self._tokens: dict[str, tuple[str, datetime]] = {}

    @property
    def public_key(self) -> str:
        """The base64url public key (``hello.push.vapid_public_key``)."""
        return self._key.public_key

    def authorization(self, origin: str, now: datetime) -> str:
        """The Authorization header for a push to ``origin`` (``aud``), valid for >= 1 h."""
        cached = self._tokens.get(origin)
        if cached is not None and cached[1] - now > TOKEN_RENEW_BEFORE:
            return cached[0]
        expires = now + TOKEN_LIFETIME
        claims = {"aud": _audience(origin), "exp": int(expires.timestamp()), "sub": self._subject}
        header: str = self._key.vapid.sign(claims)["Authorization"]
        self._tokens[origin] = (header, expires)
        return header


def _audience(origin: str) -> str:
    """RFC 8292 ``aud``: the origin as browsers serialise it (default port left out)."""
    scheme, _, authority = origin.partition("://")
    default = ":443" if scheme == "https" else ":80"
    return f"{scheme}://{authority.removesuffix(default)}"


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One push to one subscription, as the worker hands it over."""

    endpoint: str
    origin: str
    p256dh: bytes
    auth: bytes
    payload: bytes
    headers: PushHeaders


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """What came back: an HTTP status (and its Retry-After), or a transport error."""

    status: int | None
    retry_after: str | None = None
    error: TransportError | None = None


def make_session(*, max_connections: int, timeout_s: float) -> aiohttp.ClientSession:
    """The HTTP session of push sends (create it inside the running event loop).

    Proxies from the environment are not used (the allow-list is the only egress rule); the
    whole request, connecting included, is bounded by the request timeout. Redirects are refused
    per request (the allow-list judged the endpoint, not where it points).
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        trust_env=False,
        auto_decompress=False,
    )


class WebPushSender:
    """Encrypts, signs and POSTs pushes.

    Args:
        signer: VAPID header per origin.
        session: from :func:`make_session`.
        timeout_s: bound on one whole request (a push service that trickles its answer or
            never answers counts as a timeout).
        now: the clock (VAPID expiry).
    """

    def __init__(
        self,
        *,
        signer: VapidSigner,
        session: aiohttp.ClientSession,
        timeout_s: float,
        now: Callable[[], datetime],
    ) -> None:
        self._signer = signer
        self._session = session
        self._timeout_s = timeout_s
        self._now = now

    async def send(self, request: PushRequest) -> PushAnswer:
        """POST one push; never raises for the push service's faults (they are answers)."""
        body = encrypt(request.payload, p256dh=request.p256dh, auth=request.auth)
        headers = {
            "TTL": str(request.headers.ttl_s),
            "Urgency": request.headers.urgency,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self._signer.authorization(request.origin, self._now()),
        }
        if request.headers.topic is not None:
            headers["Topic"] = request.headers.topic
        try:
            async with (
                asyncio.timeout(self._timeout_s),
                self._session.post(
                    request.endpoint, data=body, headers=headers, allow_redirects=False
                ) as response,
            ):
                # The body is not read: push services answer 201 with none, and an error's
                # body is not ours to buffer (the connection is then closed, not reused).
                return PushAnswer(
                    status=response.status, retry_after=response.headers.get("Retry-After")
                )
        except TimeoutError:
            return PushAnswer(status=None, error=TransportError.TIMEOUT)
        except aiohttp.ClientError:
            return PushAnswer(status=None, error=TransportError.CONNECTION)

    async def aclose(self) -> None:
        """Close the session's connections."""
        await self._session.close()
