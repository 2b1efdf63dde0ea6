"""NextAuth session cookies as a token source: parsing, chunk joining, name selection, keys,
and the upgrade decision. The cookies here are made with joserfc and our key derivation; the
interop suite (tests/interop) proves the same against cookies minted by next-auth and @auth/core.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from joserfc import jwe
from joserfc.jwk import OctKey

from services.gateway.domain.auth import Principal, authenticate
from services.gateway.domain.errors import AuthError
from services.gateway.domain.session_cookie import (
    COOKIE_NAMES,
    CookieName,
    Flavour,
    SessionCookie,
    decrypt_session,
    derive_key,
    parse_cookie_header,
    session_cookies,
)

SECRET = "cookie-secret-0123456789abcdef0123456789"
NOW = 1_700_000_000.0
ORIGIN = "https://site.example"
V4 = CookieName("next-auth.session-token", Flavour.NEXTAUTH_V4)
V5 = CookieName("authjs.session-token", Flavour.AUTHJS_V5)
V5_SECURE = CookieName("__Secure-authjs.session-token", Flavour.AUTHJS_V5)


def _encrypt(
    name: CookieName, claims: dict[str, Any], *, enc: str | None = None, secret: str = SECRET
) -> str:
    enc = enc or ("A256GCM" if name.flavour is Flavour.NEXTAUTH_V4 else "A256CBC-HS512")
    key = OctKey.import_key(derive_key(secret, name, enc))
    return jwe.encrypt_compact({"alg": "dir", "enc": enc}, orjson.dumps(claims), key)


def _session(**extra: Any) -> dict[str, Any]:
    return {"sub": "u1", "exp": int(NOW) + 3600, "name": "U One", **extra}


def _auth(cookie: str, *, origin: str | None = ORIGIN, **kwargs: Any) -> Principal:
    return authenticate(
        origin=origin,
        authorization=kwargs.get("authorization"),
        subprotocol_headers=kwargs.get("subprotocols", []),
        cookie_headers=[cookie],
        allowed_origins={ORIGIN},
        secret=SECRET,
        now=NOW,
    )


# --- parsing ----------------------------------------------------------------------------------


def test_cookie_header_pairs_are_split_trimmed_and_unquoted() -> None:
    assert parse_cookie_header(['a=1; b = "two" ;c=x=y', "d=4"]) == {
        "a": "1",
        "b": "two",
        "c": "x=y",
        "d": "4",
    }


def test_the_first_occurrence_of_a_cookie_name_wins() -> None:
    assert parse_cookie_header(["a=first; a=second", "a=third"]) == {"a": "first"}


def test_pairs_without_a_name_or_an_equals_sign_are_ignored() -> None:
    assert parse_cookie_header(["=x; flag; ; k=v"]) == {"k": "v"}


# --- chunks and selection ---------------------------------------------------------------------


def test_chunks_are_joined_in_index_order_whatever_the_header_order() -> None:
    cookies = parse_cookie_header(
        ["next-auth.session-token.2=C; next-auth.session-token.0=A; next-auth.session-token.1=B"]
    )
    assert session_cookies(cookies) == [SessionCookie(V4, "ABC")]


def test_chunks_stop_at_the_first_missing_index() -> None:
    cookies = {"authjs.session-token.0": "A", "authjs.session-token.2": "C"}
    assert session_cookies(cookies) == [SessionCookie(V5, "A")]


def test_chunks_win_over_an_unchunked_cookie_of_the_same_name() -> None:
    cookies = {
        "authjs.session-token": "stale",
        "authjs.session-token.0": "A",
        "authjs.session-token.1": "B",
    }
    assert session_cookies(cookies) == [SessionCookie(V5, "AB")]


def test_session_cookies_come_in_preference_order_and_others_are_ignored() -> None:
    cookies = {name.name: name.name for name in reversed(COOKIE_NAMES)} | {"theme": "dark"}
    found = session_cookies(cookies)
    assert [cookie.name for cookie in found] == list(COOKIE_NAMES)
    assert found[0].name.name.startswith("__Secure-")


def test_no_session_cookie_means_none_found() -> None:
    assert session_cookies({"theme": "dark", "next-auth.csrf-token": "x"}) == []


# --- keys -------------------------------------------------------------------------------------


def test_v5_keys_are_salted_with_the_cookie_name_and_sized_by_encryption() -> None:
    assert len(derive_key(SECRET, V5, "A256CBC-HS512")) == 64
    assert len(derive_key(SECRET, V5, "A256GCM")) == 32
    assert derive_key(SECRET, V5, "A256GCM") != derive_key(SECRET, V5_SECURE, "A256GCM")


def test_v4_keys_use_no_salt_and_only_gcm() -> None:
    assert len(derive_key(SECRET, V4, "A256GCM")) == 32
    assert derive_key(SECRET, V4, "A256GCM") != derive_key(SECRET, V5, "A256GCM")
    with pytest.raises(AuthError) as caught:
        derive_key(SECRET, V4, "A256CBC-HS512")
    assert caught.value.status == 401


def test_a_cookie_decrypts_to_its_claims() -> None:
    cookie = SessionCookie(V5, _encrypt(V5, _session()))
    assert decrypt_session(cookie, secret=SECRET)["sub"] == "u1"


def test_auth_js_also_reads_gcm_sessions() -> None:
    cookie = SessionCookie(V5, _encrypt(V5, _session(), enc="A256GCM"))
    assert decrypt_session(cookie, secret=SECRET)["sub"] == "u1"


# --- the upgrade decision ---------------------------------------------------------------------


@pytest.mark.parametrize("name", COOKIE_NAMES, ids=lambda name: name.name)
def test_every_cookie_name_signs_in(name: CookieName) -> None:
    principal = _auth(f"theme=dark; {name.name}={_encrypt(name, _session())}")
    assert principal.user_id == "u1"
    assert principal.name == "U One"
    assert principal.expires_at == NOW + 3600


def test_a_chunked_cookie_signs_in() -> None:
    token = _encrypt(V4, _session(padding="x" * 6000))
    chunks = [token[i : i + 3000] for i in range(0, len(token), 3000)]
    header = "; ".join(f"{V4.name}.{i}={chunk}" for i, chunk in reversed(list(enumerate(chunks))))
    assert _auth(header).user_id == "u1"


def test_a_cookie_without_origin_is_refused_with_403() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(f"{V5.name}={_encrypt(V5, _session())}", origin=None)
    assert caught.value.status == 403


def test_a_cookie_from_a_foreign_origin_is_refused_with_403() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(f"{V5.name}={_encrypt(V5, _session())}", origin="https://evil.example")
    assert caught.value.status == 403


def test_other_cookies_alone_are_a_missing_token_even_without_origin() -> None:
    with pytest.raises(AuthError) as caught:
        _auth("theme=dark", origin=None)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    "make_cookie",
    [
        pytest.param(lambda: _encrypt(V5, _session())[:-6] + "AAAAAA", id="tampered-tag"),
        pytest.param(
            lambda: _encrypt(V5, _session()).replace(".", ".x", 3).replace(".x", ".", 2),
            id="tampered-ciphertext",
        ),
        pytest.param(lambda: _encrypt(V5, _session(exp=int(NOW) - 1)), id="expired"),
        pytest.param(lambda: _encrypt(V5, _session(nbf=int(NOW) + 60)), id="not-yet-valid"),
        pytest.param(lambda: _encrypt(V5, {"exp": int(NOW) + 60}), id="no-sub"),
        pytest.param(lambda: _encrypt(V5, {"sub": "u1"}), id="no-exp"),
        pytest.param(lambda: _encrypt(V5, _session(), secret="x" * 40), id="other-secret"),
        pytest.param(lambda: _encrypt(V4, _session()), id="v4-value-under-v5-name"),
        pytest.param(lambda: "not-a-jwe", id="garbage"),
        pytest.param(lambda: "a.b.c.d.e", id="garbage-segments"),
    ],
)
def test_an_invalid_cookie_is_refused_with_401_without_echoing_it(make_cookie: Any) -> None:
    value = make_cookie()
    with pytest.raises(AuthError) as caught:
        _auth(f"{V5.name}={value}")
    assert caught.value.status == 401
    assert value not in caught.value.reason


def test_a_stale_cookie_does_not_shadow_a_valid_one() -> None:
    header = f"{V5.name}=garbage; {V4.name}={_encrypt(V4, _session(sub='u4'))}"
    assert _auth(header).user_id == "u4"


def test_when_no_cookie_is_valid_the_first_ones_problem_is_reported() -> None:
    header = f"{V5.name}={_encrypt(V5, _session(exp=int(NOW) - 1))}; {V4.name}=garbage"
    with pytest.raises(AuthError) as caught:
        _auth(header)
    assert caught.value.reason == "token expired"


def test_a_header_token_wins_over_the_cookie() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(f"{V5.name}={_encrypt(V5, _session())}", authorization="Bearer not-a-jwt")
    assert caught.value.status == 401
    assert caught.value.reason.startswith("invalid token")


def test_a_subprotocol_token_wins_over_the_cookie() -> None:
    with pytest.raises(AuthError) as caught:
        _auth(f"{V5.name}={_encrypt(V5, _session())}", subprotocols=["chat.v1, bearer.nope"])
    assert caught.value.reason.startswith("invalid token")
