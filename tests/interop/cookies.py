"""Session cookies minted by the real next-auth / @auth/core code (``nextauth/mint.mjs``)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Literal

import orjson

MINT_DIR = Path(__file__).resolve().parent / "nextauth"


def mint_cookies(
    flavor: Literal["v4", "v5"],
    *,
    secret: str,
    claims: dict[str, Any],
    secure: bool = False,
    max_age_s: int = 3600,
) -> list[tuple[str, str]]:
    """The (name, value) cookies the library sets for a session with ``claims`` (chunked when
    large); ``max_age_s`` <= 0 makes an expired session."""
    if not (MINT_DIR / "node_modules" / "next-auth").is_dir():
        raise AssertionError(f"run `npm ci` in {MINT_DIR} (make test does)")
    request = {
        "flavor": flavor,
        "secret": secret,
        "claims": claims,
        "secure": secure,
        "max_age_s": max_age_s,
    }
    done = subprocess.run(
        ["node", "mint.mjs", orjson.dumps(request).decode()],
        cwd=MINT_DIR,
        capture_output=True,
        check=True,
        timeout=60,
    )
    return [(c["name"], c["value"]) for c in orjson.loads(done.stdout)["cookies"]]


def cookie_header(cookies: list[tuple[str, str]]) -> str:
    """A ``Cookie`` request header holding ``cookies``."""
    return "; ".join(f"{name}={value}" for name, value in cookies)


def tampered(value: str) -> str:
    """The same JWE with one character of its ciphertext changed."""
    header, key, iv, ciphertext, tag = value.split(".")
    flipped = ("A" if ciphertext[5] != "A" else "B").join((ciphertext[:5], ciphertext[6:]))
    return ".".join((header, key, iv, flipped, tag))
