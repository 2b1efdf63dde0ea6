"""Upgrade authentication: origin first (403), then a bearer token (401), checked at a given now."""

from __future__ import annotations

import base64
from typing import Any

import jwt
import orjson
import pytest

from services.gateway.domain.auth import (
    Principal,
    authenticate,
    check_origin,
    extract_token,
    mint_token,
    parse_subprotocols,
    verify_token,
)
from services.gateway.domain.errors import AuthError

# 64 bytes: long enough for HS256 and HS512 alike (shorter HMAC keys make PyJWT warn).
SECRET = "s" * 64
OTHER_SECRET = "o" * 64
NOW = 1_700_000_000.0
ALLOWED = frozenset({"https://app.example.com", "http://localhost:3000"})


def _token(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _valid(**extra: Any) -> str:
    return _token({"sub": "u1", "exp": int(NOW) + 3600, **extra})


def _auth(
    *,
    origin: str | None = None,
    authorization: str | None = None,
    subprotocols: list[str] | None = None,
) -> Principal:
    return authenticate(
        origin=origin,
        authorization=authorization,
        subprotocol_headers=subprotocols or [],
        allowed_origins=ALLOWED,
        secret=SECRET,
        now=NOW,
    )


# --- origin -----------------------------------------------------------------------------------


def test_absent_origin_is_allowed() -> None:
    check_origin(None, ALLOWED)
    check_origin(None, ())


@pytest.mark.parametrize("origin", sorted(ALLOWED))
def test_listed_origin_is_allowed(origin: str) -> None:
    check_origin(origin, ALLOWED)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.com",
        "https://app.example.com.evil.com",
        "http://app.example.com",  # scheme differs
        "https://app.example.com/",  # exact match only
        "",
        "null",
    ],
)
def test_unlisted_origin_is_403(origin: str) -> None:
    with pytest.raises(AuthError) as info:
        check_origin(origin, ALLOWED)
    assert info.value.status == 403


def test_foreign_origin_is_refused_before_the_token_is_read() -> None:
    with pytest.raises(AuthError) as info:
        _auth(origin="https://evil.example.com")
    assert info.value.status == 403


def test_foreign_origin_with_a_valid_token_is_still_403() -> None:
    with pytest.raises(AuthError) as info:
        _auth(origin="https://evil.example.com", authorization=f"Bearer {_valid()}")
    assert info.value.status == 403


def test_listed_origin_without_a_token_is_401() -> None:
    with pytest.raises(AuthError) as info:
        _auth(origin="https://app.example.com")
    assert info.value.status == 401


# --- token extraction -------------------------------------------------------------------------


def test_header_token_wins_over_subprotocol() -> None:
    assert extract_token("Bearer from-header", ["chat.v1", "bearer.from-proto"]) == "from-header"


@pytest.mark.parametrize("header", ["Bearer tok", "bearer tok", "BEARER tok", "  Bearer   tok  "])
def test_bearer_scheme_is_case_insensitive_and_whitespace_trimmed(header: str) -> None:
    assert extract_token(header, []) == "tok"


@pytest.mark.parametrize(
    "header", ["Basic x", "Bearer", "Bearer ", "Bearer    ", "", "tok", "Token x"]
)
def test_malformed_authorization_header_is_401(header: str) -> None:
    with pytest.raises(AuthError) as info:
        extract_token(header, [])
    assert info.value.status == 401


def test_malformed_header_is_not_rescued_by_a_subprotocol_token() -> None:
    with pytest.raises(AuthError) as info:
        extract_token("Basic x", ["chat.v1", "bearer.tok"])
    assert info.value.status == 401


@pytest.mark.parametrize(
    "headers",
    [
        ["chat.v1, bearer.tok"],
        ["chat.v1,bearer.tok"],
        ["chat.v1", "bearer.tok"],
        ["bearer.tok, chat.v1"],
        [" chat.v1 ,  bearer.tok  "],
    ],
)
def test_subprotocol_token_is_found_among_entries(headers: list[str]) -> None:
    assert extract_token(None, parse_subprotocols(headers)) == "tok"


def test_parse_subprotocols_splits_trims_and_drops_empty_entries() -> None:
    assert parse_subprotocols(["chat.v1, bearer.a", " , x ,", ""]) == ["chat.v1", "bearer.a", "x"]
    assert parse_subprotocols([]) == []


@pytest.mark.parametrize(
    "subprotocols", [[], ["chat.v1"], ["bearer."], ["chat.v1", "bearer"], ["Bearer.tok"]]
)
def test_missing_token_is_401(subprotocols: list[str]) -> None:
    with pytest.raises(AuthError) as info:
        extract_token(None, subprotocols)
    assert info.value.status == 401


def test_authenticate_reads_a_subprotocol_token_from_several_header_values() -> None:
    principal = _auth(subprotocols=["chat.v1", f"bearer.{_valid()}"])
    assert principal.user_id == "u1"


def test_authenticate_reads_a_comma_separated_subprotocol_header() -> None:
    principal = _auth(
        origin="https://app.example.com", subprotocols=[f"chat.v1, bearer.{_valid()}"]
    )
    assert principal.user_id == "u1"


# --- token verification -----------------------------------------------------------------------


def _none_alg_token() -> str:
    header = _b64(orjson.dumps({"alg": "none", "typ": "JWT"}))
    payload = _b64(orjson.dumps({"sub": "u1", "exp": int(NOW) + 3600}))
    return f"{header}.{payload}."


def _unsigned_payload_token(payload: bytes) -> str:
    """A correctly HS256-signed token whose payload is the given raw bytes."""
    header = _b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = _b64(payload)
    signature = jwt.get_algorithm_by_name("HS256").sign(
        f"{header}.{body}".encode(), SECRET.encode()
    )
    return f"{header}.{body}.{_b64(signature)}"


BAD_TOKENS: dict[str, str] = {
    "wrong signature": _token({"sub": "u1", "exp": int(NOW) + 3600}, secret=OTHER_SECRET),
    "HS512": _token({"sub": "u1", "exp": int(NOW) + 3600}, algorithm="HS512"),
    "alg none": _none_alg_token(),
    "garbage": "not-a-jwt",
    "three garbage parts": "aaa.bbb.ccc",
    "empty": "",
    "payload not an object": _unsigned_payload_token(b"[1, 2]"),
    "missing exp": _token({"sub": "u1"}),
    "missing sub": _token({"exp": int(NOW) + 3600}),
    "sub empty": _token({"sub": "", "exp": int(NOW) + 3600}),
    "sub 129 chars": _token({"sub": "u" * 129, "exp": int(NOW) + 3600}),
    "sub int": _token({"sub": 123, "exp": int(NOW) + 3600}),
    "sub list": _token({"sub": ["u1"], "exp": int(NOW) + 3600}),
    "sub null": _token({"sub": None, "exp": int(NOW) + 3600}),
    # What erased users' messages show as their sender: nobody may speak as it.
    "sub the erased placeholder": _token({"sub": "~erased", "exp": int(NOW) + 3600}),
    "exp string": _token({"sub": "u1", "exp": "9999999999"}),
    "exp bool": _token({"sub": "u1", "exp": True}),
    "exp equals now": _token({"sub": "u1", "exp": int(NOW)}),
    "exp in the past": _token({"sub": "u1", "exp": int(NOW) - 1}),
    "exp a fraction before now": _token({"sub": "u1", "exp": NOW - 0.5}),
    "nbf in the future": _token({"sub": "u1", "exp": int(NOW) + 3600, "nbf": int(NOW) + 60}),
    "nbf not a number": _token({"sub": "u1", "exp": int(NOW) + 3600, "nbf": "0"}),
}


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_is_401(token: str) -> None:
    with pytest.raises(AuthError) as info:
        verify_token(token, secret=SECRET, now=NOW)
    assert info.value.status == 401


@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_bad_token_via_authenticate_is_401_and_reason_never_contains_the_token(token: str) -> None:
    with pytest.raises(AuthError) as info:
        _auth(origin="https://app.example.com", authorization=f"Bearer {token}")
    assert info.value.status == 401
    if token:
        assert token not in info.value.reason
        assert token not in str(info.value)
        # Nor any of its parts (header, claims, signature).
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in info.value.reason


def test_reason_never_contains_a_subprotocol_token() -> None:
    token = BAD_TOKENS["wrong signature"]
    with pytest.raises(AuthError) as info:
        _auth(subprotocols=[f"chat.v1, bearer.{token}"])
    assert info.value.status == 401
    assert token not in info.value.reason


def test_sub_of_128_chars_is_accepted() -> None:
    principal = verify_token(
        _token({"sub": "u" * 128, "exp": int(NOW) + 1}), secret=SECRET, now=NOW
    )
    assert principal.user_id == "u" * 128


def test_token_expiring_just_after_now_is_accepted() -> None:
    principal = verify_token(_token({"sub": "u1", "exp": NOW + 0.5}), secret=SECRET, now=NOW)
    assert principal.expires_at == NOW + 0.5


def test_expiry_is_judged_by_the_injected_now_not_the_wall_clock() -> None:
    # exp far in the past by the wall clock, still in the future for the injected now.
    token = _token({"sub": "u1", "exp": 1000})
    assert verify_token(token, secret=SECRET, now=999.0).expires_at == 1000.0
    with pytest.raises(AuthError) as info:
        verify_token(token, secret=SECRET, now=1000.0)
    assert info.value.status == 401


def test_boolean_exp_is_not_a_number() -> None:
    # true == 1 in Python: at now=0 it would pass as "in the future" if bools were numbers.
    with pytest.raises(AuthError) as info:
        verify_token(_token({"sub": "u1", "exp": True}), secret=SECRET, now=0.0)
    assert info.value.status == 401


@pytest.mark.parametrize("nbf", [int(NOW) - 60, int(NOW)])
def test_nbf_now_or_in_the_past_is_accepted(nbf: int) -> None:
    token = _token({"sub": "u1", "exp": int(NOW) + 60, "nbf": nbf})
    assert verify_token(token, secret=SECRET, now=NOW).user_id == "u1"


def test_valid_token_gives_the_principal() -> None:
    token = _token(
        {"sub": "user-42", "exp": int(NOW) + 3600, "name": "Ada", "role": "admin", "extra": 1}
    )
    principal = _auth(origin="http://localhost:3000", authorization=f"Bearer {token}")
    assert principal == Principal(
        user_id="user-42", expires_at=NOW + 3600, name="Ada", role="admin"
    )
    assert isinstance(principal.expires_at, float)


def test_optional_claims_absent_or_not_strings_are_none() -> None:
    bare = verify_token(_token({"sub": "u1", "exp": int(NOW) + 1}), secret=SECRET, now=NOW)
    assert bare == Principal(user_id="u1", expires_at=NOW + 1, name=None, role=None)
    odd = verify_token(
        _token({"sub": "u1", "exp": int(NOW) + 1, "name": 7, "role": ["admin"]}),
        secret=SECRET,
        now=NOW,
    )
    assert (odd.name, odd.role) == (None, None)


def test_mint_token_round_trips() -> None:
    token = mint_token(secret=SECRET, user_id="u9", expires_at=int(NOW) + 60, name="Bo")
    assert verify_token(token, secret=SECRET, now=NOW) == Principal(
        user_id="u9", expires_at=NOW + 60, name="Bo", role=None
    )
    assert jwt.get_unverified_header(token)["alg"] == "HS256"


def test_mint_token_without_name_has_no_name_claim() -> None:
    token = mint_token(secret=SECRET, user_id="u9", expires_at=int(NOW) + 60)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {"sub": "u9", "exp": int(NOW) + 60}


def test_minted_token_is_refused_with_another_secret() -> None:
    token = mint_token(secret=SECRET, user_id="u9", expires_at=int(NOW) + 60)
    with pytest.raises(AuthError) as info:
        verify_token(token, secret=OTHER_SECRET, now=NOW)
    assert info.value.status == 401
