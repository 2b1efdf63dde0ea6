"""The gateway reads session cookies exactly as the site's NextAuth (v4) or Auth.js (v5) sets
them: minted by the libraries themselves, every name, ``__Secure-`` variants, chunked cookies,
and refused when expired, tampered, renamed or made with another secret."""

from __future__ import annotations

import time
from typing import Literal

import pytest

from services.gateway.domain.auth import Principal, authenticate
from services.gateway.domain.errors import AuthError
from tests.interop.cookies import cookie_header, mint_cookies, tampered

SECRET = "interop-secret-0123456789abcdef0123456789"
ORIGIN = "https://site.example"
Flavor = Literal["v4", "v5"]


def _auth(header: str, *, secret: str = SECRET) -> Principal:
    return authenticate(
        origin=ORIGIN,
        authorization=None,
        subprotocol_headers=[],
        cookie_headers=[header],
        allowed_origins={ORIGIN},
        secret=secret,
        now=time.time(),
    )


@pytest.mark.parametrize("flavor", ["v4", "v5"])
@pytest.mark.parametrize("secure", [False, True], ids=["plain", "secure"])
@pytest.mark.parametrize("chunked", [False, True], ids=["single", "chunked"])
def test_a_library_minted_session_signs_in(flavor: Flavor, secure: bool, chunked: bool) -> None:
    claims = {"sub": f"user-{flavor}", "name": "Ada", "email": "ada@example.org"}
    if chunked:
        claims["picture"] = "https://img.example/" + "p" * 6000
    cookies = mint_cookies(flavor, secret=SECRET, claims=claims, secure=secure)
    assert (len(cookies) > 1) == chunked
    prefix = "__Secure-" if secure else ""
    base = "next-auth" if flavor == "v4" else "authjs"
    assert all(name.startswith(f"{prefix}{base}.session-token") for name, _ in cookies)
    # Browsers send cookies in no particular order, among others of the site.
    header = "theme=dark; " + cookie_header(list(reversed(cookies)))
    principal = _auth(header)
    assert principal.user_id == f"user-{flavor}"
    assert principal.name == "Ada"
    assert principal.expires_at > time.time() + 3000


@pytest.mark.parametrize("flavor", ["v4", "v5"])
def test_an_expired_library_session_is_401(flavor: Flavor) -> None:
    cookies = mint_cookies(flavor, secret=SECRET, claims={"sub": "u1"}, max_age_s=-60)
    with pytest.raises(AuthError) as caught:
        _auth(cookie_header(cookies))
    assert (caught.value.status, caught.value.reason) == (401, "token expired")


@pytest.mark.parametrize("flavor", ["v4", "v5"])
def test_a_tampered_library_session_is_401(flavor: Flavor) -> None:
    [(name, value)] = mint_cookies(flavor, secret=SECRET, claims={"sub": "u1"})
    with pytest.raises(AuthError) as caught:
        _auth(cookie_header([(name, tampered(value))]))
    assert caught.value.status == 401


@pytest.mark.parametrize("flavor", ["v4", "v5"])
def test_a_library_session_of_another_secret_is_401(flavor: Flavor) -> None:
    other = "another-secret-0123456789abcdef012345"
    cookies = mint_cookies(flavor, secret=other, claims={"sub": "u"})
    with pytest.raises(AuthError) as caught:
        _auth(cookie_header(cookies))
    assert caught.value.status == 401


def test_a_v4_session_renamed_to_the_v5_cookie_is_401() -> None:
    [(_, value)] = mint_cookies("v4", secret=SECRET, claims={"sub": "u1"})
    with pytest.raises(AuthError) as caught:
        _auth(f"authjs.session-token={value}")
    assert caught.value.status == 401


def test_a_v5_session_is_salted_with_its_own_name() -> None:
    """Auth.js derives the key from the cookie's name: a plain cookie renamed __Secure- fails."""
    [(_, value)] = mint_cookies("v5", secret=SECRET, claims={"sub": "u1"})
    with pytest.raises(AuthError) as caught:
        _auth(f"__Secure-authjs.session-token={value}")
    assert caught.value.status == 401
