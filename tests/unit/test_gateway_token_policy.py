"""Token verification refuses what an attacker would forge: the algorithm is pinned (``none``,
RS256, an RS/HS confusion, other HMACs), a token signed with another secret is refused, and
``iss``/``aud`` are checked when configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

import jwt
import orjson
import pytest

from services.gateway.domain.auth import ALGORITHMS, mint_token, verify_token
from services.gateway.domain.errors import AuthError

SECRET = "s" * 64
NOW = 1_700_000_000.0
CLAIMS = {"sub": "u1", "exp": int(NOW) + 3600}
# What an attacker of an RS256 server would HMAC-sign with: the server's public key, as text.
PUBLIC_KEY_PEM = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAu1SU1LfVLPHCozMxH2Mo\n"
    "-----END PUBLIC KEY-----\n"
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], sign: bytes | None) -> str:
    """A token with any header, HMAC-SHA256-signed with ``sign`` as the key (or a random
    signature when None), as an attacker would build it by hand."""
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(claims))}"
    if sign is None:
        signature = os.urandom(256)
    else:
        signature = hmac.new(sign, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def refused(token: str, **policy: str | None) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify_token(token, secret=SECRET, now=NOW, **policy)
    assert info.value.status == 401
    return info.value


def test_only_hs256_is_accepted() -> None:
    assert ALGORITHMS == ("HS256",)
    assert verify_token(jwt.encode(CLAIMS, SECRET, "HS256"), secret=SECRET, now=NOW).user_id


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", ""])
@pytest.mark.parametrize("signature", ["", "AAAA"])
def test_alg_none_is_refused_in_every_spelling(alg: str, signature: str) -> None:
    token = f"{b64(orjson.dumps({'alg': alg, 'typ': 'JWT'}))}.{b64(orjson.dumps(CLAIMS))}."
    refused(token + signature)


def test_an_rs256_token_is_refused() -> None:
    refused(forged({"alg": "RS256", "typ": "JWT"}, CLAIMS, sign=None))


def test_rs_hs_confusion_is_refused() -> None:
    # Header says RS256, signature is an HMAC with our own secret: a verifier that took the
    # algorithm from the header and the secret as "the key" would accept it.
    refused(forged({"alg": "RS256", "typ": "JWT"}, CLAIMS, sign=SECRET.encode()))
    # HS256 signed with a public key's text, the classic confusion against RS256 servers.
    refused(forged({"alg": "HS256", "typ": "JWT"}, CLAIMS, sign=PUBLIC_KEY_PEM.encode()))


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_refused_even_with_our_secret(alg: str) -> None:
    refused(jwt.encode(CLAIMS, SECRET, alg))


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA", "RS512"])
def test_asymmetric_algorithms_are_refused(alg: str) -> None:
    refused(forged({"alg": alg}, CLAIMS, sign=None))


def test_a_token_signed_with_another_secret_is_refused() -> None:
    refused(jwt.encode(CLAIMS, "o" * 64, "HS256"))


def test_key_hints_in_the_header_are_ignored() -> None:
    # An attacker's own key offered in the header (jwk, jku, kid) changes nothing: only our
    # secret verifies.
    attacker = b"attacker-key-" * 4
    header = {"alg": "HS256", "jwk": {"kty": "oct", "k": b64(attacker)}, "kid": "../../dev/null"}
    refused(forged(header, CLAIMS, sign=attacker))
    refused(forged({"alg": "HS256", "jku": "https://evil.example/keys"}, CLAIMS, sign=attacker))


def test_issuer_is_checked_when_configured() -> None:
    policy = {"issuer": "https://site.example"}
    good = jwt.encode({**CLAIMS, "iss": "https://site.example"}, SECRET, "HS256")
    assert verify_token(good, secret=SECRET, now=NOW, **policy).user_id == "u1"
    refused(jwt.encode(CLAIMS, SECRET, "HS256"), **policy)
    refused(jwt.encode({**CLAIMS, "iss": "https://evil.example"}, SECRET, "HS256"), **policy)
    listed = {**CLAIMS, "iss": ["https://site.example"]}
    refused(forged({"alg": "HS256"}, listed, sign=SECRET.encode()), **policy)


def test_issuer_is_not_required_when_unconfigured() -> None:
    token = jwt.encode({**CLAIMS, "iss": "anyone"}, SECRET, "HS256")
    assert verify_token(token, secret=SECRET, now=NOW).user_id == "u1"


@pytest.mark.parametrize("aud", ["realtime", ["web", "realtime"]])
def test_audience_naming_us_is_accepted(aud: str | list[str]) -> None:
    token = jwt.encode({**CLAIMS, "aud": aud}, SECRET, "HS256")
    assert verify_token(token, secret=SECRET, now=NOW, audience="realtime").user_id == "u1"


def test_audience_is_checked_when_configured() -> None:
    refused(jwt.encode(CLAIMS, SECRET, "HS256"), audience="realtime")
    refused(jwt.encode({**CLAIMS, "aud": "billing"}, SECRET, "HS256"), audience="realtime")
    refused(jwt.encode({**CLAIMS, "aud": ["billing"]}, SECRET, "HS256"), audience="realtime")


def test_a_token_for_some_audience_is_refused_when_none_is_configured() -> None:
    refused(jwt.encode({**CLAIMS, "aud": "billing"}, SECRET, "HS256"))


def test_minted_tokens_carry_the_configured_issuer_and_audience() -> None:
    token = mint_token(
        secret=SECRET, user_id="u9", expires_at=int(NOW) + 60, issuer="i", audience="a"
    )
    assert verify_token(token, secret=SECRET, now=NOW, issuer="i", audience="a").user_id == "u9"
