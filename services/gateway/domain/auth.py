"""Authentication of the upgrade request (protocol.md, "Connecting"). Pure: the clock is passed in.

Token sources, in order: ``Authorization: Bearer <token>``, then a ``bearer.<token>`` entry in
``Sec-WebSocket-Protocol`` (browsers cannot set headers on a WebSocket), then the site's
NextAuth session cookie (``session_cookie``). Origin is checked first: a browser page from a
foreign site is refused before its token is even read. A cookie is sent by the browser whatever
page opens the socket, so a cookie-authenticated upgrade also REQUIRES an Origin, and an allowed
one (cross-site WebSocket hijacking): a request without Origin is not a browser page we can vouch
for, and gets 403. The URL's query string is never a source: a token there would be written to
proxy and server logs.

Verification of a bearer token pins the algorithm (HS256, never the one the token's header
names) and, when configured, checks ``iss`` and ``aud`` (``AUTH_ISSUER``, ``AUTH_AUDIENCE``).
The session cookie is a JWE only our secret decrypts; NextAuth puts no ``iss``/``aud`` in it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt.types import Options

from schemas.ids import ERASED_USER_ID
from services.gateway.domain.errors import AuthError
from services.gateway.domain.session_cookie import (
    SessionCookie,
    decrypt_session,
    parse_cookie_header,
    session_cookies,
)

SUBPROTOCOL = "chat.v1"
_BEARER_SUBPROTOCOL_PREFIX = "bearer."
#: The one signature algorithm accepted, whatever a token's header says: the site signs with a
#: shared secret. "none", RS256 (a public key passed off as an HMAC secret: the RS/HS
#: confusion) and every other algorithm are refused before any signature is computed.
ALGORITHMS = ("HS256",)


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated user of a connection."""

    user_id: str
    # Token expiry (epoch seconds): the connection is closed with 4001 then.
    expires_at: float
    name: str | None = None
    role: str | None = None


def check_origin(origin: str | None, allowed: Collection[str]) -> None:
    """Refuse a present Origin that is not allow-listed.

    Raises:
        AuthError: 403.
    """
    if origin is not None and origin not in allowed:
        raise AuthError(403, "origin not allowed")


def extract_token(authorization: str | None, subprotocols: list[str]) -> str:
    """The bearer token from the header, else from the subprotocol list.

    Raises:
        AuthError: 401 when there is none or the header is malformed.
    """
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "malformed authorization header")
        return token.strip()
    for entry in subprotocols:
        if entry.startswith(_BEARER_SUBPROTOCOL_PREFIX) and len(entry) > len(
            _BEARER_SUBPROTOCOL_PREFIX
        ):
            return entry[len(_BEARER_SUBPROTOCOL_PREFIX) :]
    raise AuthError(401, "missing token")


def parse_subprotocols(header_values: list[str]) -> list[str]:
    """Split ``Sec-WebSocket-Protocol`` header values into entries."""
    return [part.strip() for value in header_values for part in value.split(",") if part.strip()]


def verify_token(
    token: str,
    *,
    secret: str,
    now: float,
    issuer: str | None = None,
    audience: str | None = None,
) -> Principal:
    """Verify an HS256 JWT and read its claims.

    Expiry and not-before are checked against ``now`` here rather than by PyJWT's own clock,
    so the decision is a pure function of its inputs.

    Args:
        issuer: when set, ``iss`` must be present and equal to it.
        audience: when set, ``aud`` (a string or a list) must be present and name it. When
            unset, a token that carries ``aud`` is refused: it was meant for someone else.

    Raises:
        AuthError: 401 for a malformed, wrongly signed, expired or incomplete token, or one
            for another issuer or audience.
    """
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=list(ALGORITHMS),
            issuer=issuer,
            audience=audience,
            options=_decode_options(issuer=issuer, audience=audience),
        )
    except jwt.PyJWTError as exc:
        raise AuthError(401, f"invalid token: {type(exc).__name__}") from exc
    return principal_from_claims(claims, now=now)


def principal_from_claims(claims: dict[str, Any], *, now: float) -> Principal:
    """Check the claims every token source shares (``sub``, ``exp``, ``nbf``) against ``now``.

    Raises:
        AuthError: 401 for a missing or malformed claim, an expired or not yet valid token.
    """
    sub = claims.get("sub")
    if not isinstance(sub, str) or not 1 <= len(sub) <= 128:
        raise AuthError(401, "invalid token: sub must be a string of 1..128 characters")
    if sub == ERASED_USER_ID:
        # The placeholder erased users' messages show as their sender: nobody speaks as it.
        raise AuthError(401, "invalid token: sub is reserved")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError(401, "invalid token: exp must be a number")
    if exp <= now:
        raise AuthError(401, "token expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or isinstance(nbf, bool)):
        raise AuthError(401, "invalid token: nbf must be a number")
    if nbf is not None and nbf > now:
        raise AuthError(401, "token not yet valid")
    name, role = claims.get("name"), claims.get("role")
    return Principal(
        user_id=sub,
        expires_at=float(exp),
        name=name if isinstance(name, str) else None,
        role=role if isinstance(role, str) else None,
    )


def verify_session_cookie(found: list[SessionCookie], *, secret: str, now: float) -> Principal:
    """The principal of the first session cookie that decrypts to a valid session.

    Raises:
        AuthError: 401 when none is valid (the first one's problem is reported).
    """
    first_error = AuthError(401, "missing token")
    for index, cookie in enumerate(found):
        try:
            return principal_from_claims(decrypt_session(cookie, secret=secret), now=now)
        except AuthError as exc:
            if index == 0:
                first_error = exc
    raise first_error


def _decode_options(*, issuer: str | None, audience: str | None) -> Options:
    """PyJWT's options: claims required (``iss``/``aud`` only when configured), time checks
    left to :func:`verify_token`'s injected clock."""
    required = ["exp", "sub"]
    if issuer is not None:
        required.append("iss")
    if audience is not None:
        required.append("aud")
    return {
        "require": required,
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_sub": False,
    }


def authenticate(
    *,
    origin: str | None,
    authorization: str | None,
    subprotocol_headers: list[str],
    allowed_origins: Collection[str],
    secret: str,
    now: float,
    cookie_headers: Sequence[str] = (),
    issuer: str | None = None,
    audience: str | None = None,
) -> Principal:
    """The whole upgrade decision: origin, then the token from the header, the subprotocol
    list or, failing both, the session cookie (which needs an allowed Origin).

    Raises:
        AuthError: 403 for a foreign origin, or a cookie without Origin; 401 for any token
            problem.
    """
    check_origin(origin, allowed_origins)
    subprotocols = parse_subprotocols(subprotocol_headers)
    if authorization is None and not any(
        entry.startswith(_BEARER_SUBPROTOCOL_PREFIX) for entry in subprotocols
    ):
        found = session_cookies(parse_cookie_header(cookie_headers))
        if not found:
            raise AuthError(401, "missing token")
        if origin is None:
            raise AuthError(403, "a session cookie needs an allowed Origin")
        return verify_session_cookie(found, secret=secret, now=now)
    token = extract_token(authorization, subprotocols)
    return verify_token(token, secret=secret, now=now, issuer=issuer, audience=audience)


def mint_token(
    *,
    secret: str,
    user_id: str,
    expires_at: int,
    name: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """A token as the site's auth would issue it (dev tool and tests)."""
    claims: dict[str, object] = {"sub": user_id, "exp": expires_at}
    if name is not None:
        claims["name"] = name
    if issuer is not None:
        claims["iss"] = issuer
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
