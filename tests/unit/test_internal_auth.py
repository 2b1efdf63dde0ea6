"""Internal HTTP APIs require a token by default: settings refuse to load without one (so a
service refuses to start), the check is the same in every service, and only an explicit
``INTERNAL_AUTH=disabled`` opens them. Listeners default to loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import Depends
from pydantic import ValidationError

from services.chat.settings import ChatSettings
from services.gateway.settings import GatewaySettings
from services.presence.settings import PresenceSettings
from services.runtime.health import Readiness
from services.runtime.http import internal_app, require_internal_token
from services.runtime.settings import InternalAuthSettings

TOKEN = "t" * 43
DATABASE_URL = "postgresql://app:hunter2-database-password@db.example:5432/realtime"
AUTH_SECRET = "auth-secret-that-must-never-be-logged-0123456789"


@pytest.fixture(autouse=True)
def _no_internal_auth_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("INTERNAL_TOKEN", "INTERNAL_TOKEN_FILE", "INTERNAL_AUTH"):
        monkeypatch.delenv(name, raising=False)


def settings_of(kind: str, **values: object) -> InternalAuthSettings:
    base: dict[str, object] = {"kafka_bootstrap_servers": "kafka.example:9092"}
    if kind == "gateway":
        return GatewaySettings(**base, auth_secret=AUTH_SECRET, **values)  # type: ignore[arg-type]
    cls = ChatSettings if kind == "chat" else PresenceSettings
    return cls(**base, database_url=DATABASE_URL, **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["chat", "presence", "gateway"])
def test_a_service_without_a_token_refuses_to_load_and_names_the_variable(kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        settings_of(kind)
    message = str(info.value)
    assert "INTERNAL_TOKEN" in message
    # The error ends up in a log: none of the other settings' secrets may be in it.
    assert "hunter2" not in message and AUTH_SECRET not in message


@pytest.mark.parametrize("kind", ["chat", "presence", "gateway"])
def test_a_short_token_is_refused_without_being_shown(kind: str) -> None:
    with pytest.raises(ValidationError) as info:
        settings_of(kind, internal_token="short-secret-value")
    assert "short-secret-value" not in str(info.value)


@pytest.mark.parametrize("kind", ["chat", "presence", "gateway"])
def test_the_token_comes_from_the_variable_or_a_file(kind: str, tmp_path: Path) -> None:
    assert settings_of(kind, internal_token=TOKEN).required_internal_token() == TOKEN
    path = tmp_path / "internal-token"
    path.write_text(f"{TOKEN}\n")
    assert settings_of(kind, internal_token_file=path).required_internal_token() == TOKEN
    # The variable wins; an empty one counts as unset.
    from_file = settings_of(kind, internal_token="", internal_token_file=path)
    assert from_file.required_internal_token() == TOKEN
    with pytest.raises(ValidationError):
        settings_of(kind, internal_token_file=tmp_path / "missing")


@pytest.mark.parametrize("kind", ["chat", "presence", "gateway"])
def test_only_an_explicit_opt_out_opens_internal_apis(kind: str) -> None:
    assert settings_of(kind, internal_auth="disabled").required_internal_token() is None
    with pytest.raises(ValidationError):
        settings_of(kind, internal_auth="off")


def test_every_listener_defaults_to_loopback() -> None:
    assert settings_of("chat", internal_token=TOKEN).chat_host == "127.0.0.1"  # type: ignore[attr-defined]
    assert settings_of("presence", internal_token=TOKEN).presence_host == "127.0.0.1"  # type: ignore[attr-defined]
    assert settings_of("gateway", internal_token=TOKEN).gateway_host == "127.0.0.1"  # type: ignore[attr-defined]


def _client(token: str | None) -> httpx.AsyncClient:
    """An in-process client of an internal app (ASGI, no socket)."""
    app = internal_app(title="t", readiness=Readiness(), internal_token=token)

    @app.get("/internal/v1/thing", dependencies=[Depends(require_internal_token)])
    async def thing() -> dict[str, str]:
        return {"ok": "yes"}

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [(b"X-Internal-Token", b"")],
        [(b"X-Internal-Token", TOKEN[:-1].encode())],
        [(b"X-Internal-Token", TOKEN.encode() + b"t")],
        # Not ASCII: compared as bytes, never raising.
        [(b"X-Internal-Token", b"\xe9" * len(TOKEN))],
    ],
)
async def test_internal_routes_refuse_a_missing_or_wrong_token(
    headers: list[tuple[bytes, bytes]],
) -> None:
    async with _client(TOKEN) as client:
        assert (await client.get("/internal/v1/thing", headers=headers)).status_code == 401


async def test_internal_routes_accept_the_token_and_probes_need_none() -> None:
    async with _client(TOKEN) as client:
        ok = await client.get("/internal/v1/thing", headers={"X-Internal-Token": TOKEN})
        assert ok.json() == {"ok": "yes"}
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_disabled_internal_auth_accepts_anyone() -> None:
    async with _client(None) as client:
        assert (await client.get("/internal/v1/thing")).status_code == 200
