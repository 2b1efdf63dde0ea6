"""The secrets a development stack makes for itself when the caller gives none: the VAPID pair
(Web Push) and the internal API token, each kept in .local/ (mode 0600)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from deploy.local.infra.config import (
    DEV_VAPID_SUBJECT,
    INTERNAL_TOKEN_FILE,
    REPO,
    VAPID_FILE,
    Config,
    StackError,
)
from deploy.local.infra.processes import say


@dataclass(frozen=True)
class Vapid:
    """The VAPID pair and subject the services get (Web Push)."""

    private_key: str
    public_key: str
    subject: str


def vapid_tool(command: str, env: Mapping[str, str]) -> str:
    """Run ``python -m services.notifier.vapid <command>`` with this interpreter; its stdout.

    Raises:
        StackError: the tool failed (its message never contains a key).
    """
    result = subprocess.run(
        [sys.executable, "-m", "services.notifier.vapid", command],
        cwd=REPO,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"services.notifier.vapid {command} failed:\n{result.stderr}")
    return result.stdout


def read_env_lines(text: str) -> dict[str, str]:
    """``NAME=value`` lines as a mapping (blank lines and comments ignored)."""
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs if not name.startswith("#")}


def development_vapid_pair() -> dict[str, str]:
    """The development pair in .local/vapid.env, generated the first time (mode 0600)."""
    if not VAPID_FILE.is_file():
        generated = vapid_tool("generate", os.environ)
        descriptor = os.open(VAPID_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write("# Development VAPID key pair made by `make up`; production sets its own.\n")
            out.write(generated)
        say(f"generated a development VAPID key pair in {VAPID_FILE}")
    VAPID_FILE.chmod(0o600)
    pair = read_env_lines(VAPID_FILE.read_text())
    if not pair.get("VAPID_PRIVATE_KEY") or not pair.get("VAPID_PUBLIC_KEY"):
        raise StackError(f"{VAPID_FILE} lacks a key; delete it to have a new pair made")
    return pair


def vapid_keys(cfg: Config) -> Vapid:
    """The configured VAPID key (its public half derived by the tool) or the development pair."""
    subject = cfg.vapid_subject or DEV_VAPID_SUBJECT
    if cfg.vapid_private_key is None:
        pair = development_vapid_pair()
        return Vapid(pair["VAPID_PRIVATE_KEY"], pair["VAPID_PUBLIC_KEY"], subject)
    env = {**os.environ, "VAPID_PRIVATE_KEY": cfg.vapid_private_key}
    public = vapid_tool("public-key", env).strip()
    return Vapid(cfg.vapid_private_key, public, subject)


def internal_token() -> str:
    """The internal API token: the caller's ``INTERNAL_TOKEN``, else one generated once into
    .local/internal-token, readable by its owner only (services refuse to start without one)."""
    given = os.environ.get("INTERNAL_TOKEN")
    if given:
        return given
    try:
        fd = os.open(INTERNAL_TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return INTERNAL_TOKEN_FILE.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(32) + "\n")
    say(f"generated the internal API token in {INTERNAL_TOKEN_FILE}")
    return INTERNAL_TOKEN_FILE.read_text().strip()
