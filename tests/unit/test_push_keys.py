"""VAPID keys, tokens and push settings, without network: key formats, the public key, the
cached token's claims and renewal (fake clock), encryption a browser can decrypt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import http_ece
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt as vapid_jwt
from pydantic import ValidationError

from services.notifier.domain.push import b64url_decode, b64url_encode
from services.notifier.push_settings import PushSettings
from services.notifier.vapid import generate, load_private_key, main
from services.notifier.webpush import VapidSigner, encrypt

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _pem(key: ec.EllipticCurvePrivateKey, fmt: serialization.PrivateFormat) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def test_a_generated_pair_loads_and_derives_its_public_key() -> None:
    private, public = generate()
    assert len(b64url_decode(private)) == 32
    raw_public = b64url_decode(public)
    assert len(raw_public) == 65 and raw_public[0] == 4
    assert load_private_key(private).public_key == public


def test_pem_keys_in_both_encodings_and_with_escaped_newlines_load() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    scalar = b64url_encode(key.private_numbers().private_value.to_bytes(32, "big"))
    expected = load_private_key(scalar).public_key
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        pem = _pem(key, fmt)
        assert load_private_key(pem).public_key == expected
        assert load_private_key(pem.replace("\n", "\\n")).public_key == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        b64url_encode(b"\x01" * 31),
        b64url_encode(b"\x00" * 32),  # zero is not a private key
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----",
    ],
)
def test_unreadable_keys_are_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(ValueError) as refused:
        load_private_key(value)
    assert value not in str(refused.value) or not value


def test_keys_of_other_curves_are_refused() -> None:
    other = _pem(ec.generate_private_key(ec.SECP384R1()), serialization.PrivateFormat.PKCS8)
    with pytest.raises(ValueError, match="P-256"):
        load_private_key(other)


def test_the_token_names_the_push_service_and_is_renewed_before_it_expires() -> None:
    private, public = generate()
    signer = VapidSigner(load_private_key(private), "mailto:ops@example.org")
    header = signer.authorization("https://fcm.googleapis.com:443", T0)
    scheme, params = header.split(" ", 1)
    fields = dict(part.strip().split("=", 1) for part in params.split(","))
    assert scheme == "vapid" and fields["k"] == public
    claims = vapid_jwt.decode(fields["t"], fields["k"])
    assert claims == {
        "aud": "https://fcm.googleapis.com",
        "exp": int((T0 + timedelta(hours=12)).timestamp()),
        "sub": "mailto:ops@example.org",
    }
    assert (
        signer.authorization("https://fcm.googleapis.com:443", T0 + timedelta(hours=10)) == header
    )
    renewed = signer.authorization(
        "https://fcm.googleapis.com:443", T0 + timedelta(hours=11, minutes=1)
    )
    assert renewed != header
    other = signer.authorization("http://127.0.0.1:8080", T0)
    other_claims = vapid_jwt.decode(other.split("t=", 1)[1].split(",", 1)[0], public)
    assert other_claims["aud"] == "http://127.0.0.1:8080"


def test_a_push_body_decrypts_with_the_browsers_keys_and_never_repeats() -> None:
    browser = ec.generate_private_key(ec.SECP256R1())
    p256dh = browser.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    auth = b"0123456789abcdef"
    payload = b'{"notification":{"id":"n1"},"unread_count":1}'
    first = encrypt(payload, p256dh=p256dh, auth=auth)
    second = encrypt(payload, p256dh=p256dh, auth=auth)
    assert first != second  # a fresh salt and ephemeral key each time (RFC 8291)
    for body in (first, second):
        assert http_ece.decrypt(body, private_key=browser, auth_secret=auth) == payload
    assert len(first) == len(payload) + 103


def test_push_settings_defaults_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAPID_PRIVATE_KEY", "VAPID_SUBJECT", "PUSH_ENDPOINT_ALLOWLIST"):
        monkeypatch.delenv(name, raising=False)
    settings = PushSettings()
    assert not settings.push_enabled
    assert settings.endpoint_allowlist.check("https://fcm.googleapis.com/fcm/send/x")
    private, _ = generate()
    enabled = PushSettings(vapid_private_key=private, vapid_subject="mailto:ops@example.org")
    assert enabled.push_enabled
    assert enabled.retry_policy.give_up_after == timedelta(hours=1)
    with pytest.raises(ValidationError):
        PushSettings(vapid_subject="ops@example.org")
    with pytest.raises(ValidationError):
        PushSettings(vapid_private_key="garbage")
    with pytest.raises(ValidationError):
        PushSettings(push_endpoint_allowlist="*.com")


def test_the_command_line_generates_and_derives(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["generate"]) == 0
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    monkeypatch.setenv("VAPID_PRIVATE_KEY", lines["VAPID_PRIVATE_KEY"])
    assert main(["public-key"]) == 0
    assert capsys.readouterr().out.strip() == lines["VAPID_PUBLIC_KEY"]
    monkeypatch.setenv("VAPID_PRIVATE_KEY", "garbage")
    assert main(["public-key"]) == 2
    assert "garbage" not in capsys.readouterr().err
