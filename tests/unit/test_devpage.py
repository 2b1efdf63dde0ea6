"""The development page: what it serves, what it refuses, and tokens only when enabled."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from services.gateway.devpage import DevPage
from services.gateway.domain.auth import mint_token, verify_token

SECRET = "dev-page-secret-0123456789abcdef0123456789"
NOW = 1_700_000_000.0


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for relative, text in {
        "demo/index.html": "<html>demo</html>",
        "demo/style.css": "body{}",
        "dist/index.js": "export {}",
        "dist/sw.js": "self.addEventListener",
        "dist-demo/app.js": "import '../dist/index.js'",
        "src/secret.ts": "not served",
        "package.json": "{}",
    }.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def _page(root: Path, *, tokens: bool) -> DevPage:
    def mint(user_id: str, expires_at: int) -> str:
        return mint_token(secret=SECRET, user_id=user_id, expires_at=expires_at)

    return DevPage(root=root, mint=mint if tokens else None, now=lambda: NOW)


@pytest.mark.parametrize(
    ("target", "body", "content_type"),
    [
        ("/dev/", b"<html>demo</html>", "text/html; charset=utf-8"),
        ("/dev/?user=alice", b"<html>demo</html>", "text/html; charset=utf-8"),
        ("/dev/demo/style.css", b"body{}", "text/css; charset=utf-8"),
        ("/dev/dist/index.js", b"export {}", "text/javascript; charset=utf-8"),
        ("/dev/dist-demo/app.js", b"import '../dist/index.js'", "text/javascript; charset=utf-8"),
        ("/dev/sw.js", b"self.addEventListener", "text/javascript; charset=utf-8"),
    ],
)
def test_the_demo_and_the_built_sdk_are_served(
    root: Path, target: str, body: bytes, content_type: str
) -> None:
    response = _page(root, tokens=False).respond(target)
    assert (response.status_code, response.body) == (200, body)
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "target",
    [
        "/dev/src/secret.ts",
        "/dev/package.json",
        "/dev/dist/../src/secret.ts",
        "/dev/dist/%2e%2e/package.json",
        "/dev/dist/",
        "/dev/dist/missing.js",
        "/dev/demo/../../etc/passwd",
    ],
)
def test_nothing_else_is_served(root: Path, target: str) -> None:
    assert _page(root, tokens=True).respond(target).status_code == 404


def test_dev_redirects_to_the_folder(root: Path) -> None:
    response = _page(root, tokens=False).respond("/dev")
    assert (response.status_code, response.headers["Location"]) == (308, "/dev/")


def test_tokens_are_404_unless_enabled(root: Path) -> None:
    assert _page(root, tokens=False).respond("/dev/token?sub=alice").status_code == 404


def test_an_enabled_token_route_mints_an_hour_long_token(root: Path) -> None:
    response = _page(root, tokens=True).respond("/dev/token?sub=alice")
    assert response.status_code == 200
    token = orjson.loads(response.body)["token"]
    principal = verify_token(token, secret=SECRET, now=NOW)
    assert (principal.user_id, principal.expires_at) == ("alice", NOW + 3600)


@pytest.mark.parametrize("target", ["/dev/token", "/dev/token?sub=", f"/dev/token?sub={'x' * 129}"])
def test_a_token_needs_a_valid_user_id(root: Path, target: str) -> None:
    assert _page(root, tokens=True).respond(target).status_code == 400
