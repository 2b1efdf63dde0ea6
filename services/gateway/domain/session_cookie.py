"""The site's NextAuth session cookie as a token source (protocol.md part 2, last section). Pure.

The site signs people in with NextAuth: v4 (``next-auth``) or Auth.js v5 (``@auth/core``). Both
keep the session in a cookie holding an encrypted JWT (JWE, ``alg: dir``), keyed from the
site's secret:

=========  ==========================================  ===============  ==========================
flavour    cookie names                                ``enc``          key (HKDF-SHA256)
=========  ==========================================  ===============  ==========================
v4         ``next-auth.session-token``,                ``A256GCM``      salt ``""``, info
           ``__Secure-next-auth.session-token``                         ``NextAuth.js Generated
                                                                        Encryption Key``, 32 bytes
v5         ``authjs.session-token``,                   ``A256CBC-HS512`` salt = the cookie's name,
           ``__Secure-authjs.session-token``           (or ``A256GCM``)  info ``Auth.js Generated
                                                                        Encryption Key (<salt>)``,
                                                                        64 bytes (32 for GCM)
=========  ==========================================  ===============  ==========================

(next-auth ``src/jwt/index.ts`` on its v4 branch; ``packages/core/src/jwt.ts`` for Auth.js.) A
cookie over ~4 KB is split by the library's ``SessionStore`` into ``<name>.0``, ``<name>.1``, …
which are joined in index order. Decryption is joserfc's; the key derivation is
``cryptography``'s HKDF: no hand-written cryptography.

Selection: the names above are tried in the order of :data:`COOKIE_NAMES` (``__Secure-`` first:
a browser only stores those from a secure page) and the first cookie that decrypts to a valid
session wins, so a stale cookie of an older site version does not shadow the current one.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import GuestProtocol, OctKey

from services.gateway.domain.errors import AuthError


class Flavour(Enum):
    """Which library issued the cookie (it decides the key derivation)."""

    NEXTAUTH_V4 = "v4"
    AUTHJS_V5 = "v5"


@dataclass(frozen=True, slots=True)
class CookieName:
    """A session cookie name and the library that issues it."""

    name: str
    flavour: Flavour


#: Session cookie names, in the order they are tried.
COOKIE_NAMES: tuple[CookieName, ...] = (
    CookieName("__Secure-authjs.session-token", Flavour.AUTHJS_V5),
    CookieName("authjs.session-token", Flavour.AUTHJS_V5),
    CookieName("__Secure-next-auth.session-token", Flavour.NEXTAUTH_V4),
    CookieName("next-auth.session-token", Flavour.NEXTAUTH_V4),
)

# What each flavour's library accepts when it decodes its own cookies.
_ALGORITHMS: dict[Flavour, list[str]] = {
    Flavour.NEXTAUTH_V4: ["dir", "A256GCM"],
    Flavour.AUTHJS_V5: ["dir", "A256CBC-HS512", "A256GCM"],
}
_KEY_BYTES = {"A256GCM": 32, "A256CBC-HS512": 64}
# Far above any real session (next-auth chunks at ~4 KB, a header holds a few chunks): a bound
# on the work a hostile request can cause.
_MAX_CHUNKS = 16


@dataclass(frozen=True, slots=True)
class SessionCookie:
    """The session token found in a request's cookies, chunks joined."""

    name: CookieName
    token: str


def parse_cookie_header(values: Iterable[str]) -> dict[str, str]:
    """``Cookie`` header values -> name -> value (the first occurrence of a name wins, as in
    the ``cookie`` package NextAuth reads them with; double quotes around a value are removed)."""
    cookies: dict[str, str] = {}
    for value in values:
        for pair in value.split(";"):
            name, sep, raw = pair.partition("=")
            name = name.strip()
            if not sep or not name or name in cookies:
                continue
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1]
            cookies[name] = raw
    return cookies


def session_cookies(cookies: Mapping[str, str]) -> list[SessionCookie]:
    """Every session cookie present, in the order they are tried.

    A name's chunks ``.0``, ``.1``, … (consecutive from 0) are joined; when chunks are present
    they win over an unchunked cookie of the same name (the library writes one form and clears
    the other, so both at once means one is stale, and the chunked one is the later, larger
    session).
    """
    found: list[SessionCookie] = []
    for candidate in COOKIE_NAMES:
        chunks: list[str] = []
        while len(chunks) < _MAX_CHUNKS and (
            chunk := cookies.get(f"{candidate.name}.{len(chunks)}")
        ):
            chunks.append(chunk)
        token = "".join(chunks) or cookies.get(candidate.name, "")
        if token:
            found.append(SessionCookie(name=candidate, token=token))
    return found


def derive_key(secret: str, cookie_name: CookieName, enc: str) -> bytes:
    """The content encryption key the issuing library derives from the site's secret.

    Raises:
        AuthError: 401 for a content encryption the flavour never uses.
    """
    length = _KEY_BYTES.get(enc)
    if length is None or enc not in _ALGORITHMS[cookie_name.flavour]:
        raise AuthError(401, "invalid session cookie: unsupported encryption")
    if cookie_name.flavour is Flavour.NEXTAUTH_V4:
        salt, info = b"", b"NextAuth.js Generated Encryption Key"
    else:
        salt = cookie_name.name.encode()
        info = f"Auth.js Generated Encryption Key ({cookie_name.name})".encode()
    return HKDF(algorithm=SHA256(), length=length, salt=salt, info=info).derive(secret.encode())


def decrypt_session(cookie: SessionCookie, *, secret: str) -> dict[str, Any]:
    """The claims of a session cookie (not yet checked for expiry: see ``auth``).

    Raises:
        AuthError: 401 when it is not a JWE of the flavour, or does not decrypt with the key
            (tampered, or made with another secret).
    """

    def key_for(guest: GuestProtocol) -> OctKey:
        enc = guest.headers().get("enc")
        return OctKey.import_key(derive_key(secret, cookie.name, str(enc)))

    try:
        decrypted = jwe.decrypt_compact(
            cookie.token, key_for, algorithms=_ALGORITHMS[cookie.name.flavour]
        )
        claims = orjson.loads(decrypted.plaintext or b"")
    except (JoseError, ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise AuthError(401, f"invalid session cookie: {type(exc).__name__}") from exc
    if not isinstance(claims, dict):
        raise AuthError(401, "invalid session cookie: claims must be an object")
    return claims
