"""The services' environment and their start: migrations first for those owning a schema, then
``python -m services.<name>`` detached, ready when its /readyz answers."""

from __future__ import annotations

import os
import subprocess

from deploy.local.infra.config import DEV_AUTH_SECRET, LOGS, MIGRATING_SERVICES, Config, StackError
from deploy.local.infra.credentials import Vapid, internal_token
from deploy.local.infra.processes import ensure_running, require_free_port, spawn_detached
from deploy.local.launcher import (
    SERVICES,
    LaunchError,
    ServiceProcess,
    readyz,
    service_argv,
    service_env,
)


def stack_env(cfg: Config, vapid: Vapid) -> dict[str, str]:
    """Environment of the services: the caller's, plus where everything is, the internal API
    token and the VAPID pair.

    The local dev stack also serves the SDK demo and mints development tokens (both off in the
    gateway's own defaults; the caller's environment wins), and allows the demo's origin.
    """
    env = service_env(
        os.environ,
        kafka_bootstrap=cfg.kafka_bootstrap,
        database_url=cfg.database_url,
        auth_secret=cfg.auth_secret or DEV_AUTH_SECRET,
        internal_token=internal_token(),
        ports=dict(service_ports(cfg)),
    ) | {
        "VAPID_PRIVATE_KEY": vapid.private_key,
        "VAPID_PUBLIC_KEY": vapid.public_key,
        "VAPID_SUBJECT": vapid.subject,
    }
    env.setdefault("GATEWAY_DEV_PAGE", "1")
    env.setdefault("GATEWAY_DEV_TOKENS", "1")
    env.setdefault(
        "GATEWAY_ALLOWED_ORIGINS",
        f"http://127.0.0.1:{cfg.gateway_port},http://localhost:{cfg.gateway_port}",
    )
    return env


def service_up(name: str, port: int, cfg: Config, env: dict[str, str]) -> None:
    """Start ``python -m services.<name>`` unless it runs, and wait for its /readyz; a service
    that owns a schema gets its migrations applied first (``… migrate``)."""

    def start() -> subprocess.Popen[bytes]:
        require_free_port(port, name, f"set {name.upper()}_PORT")
        if name in MIGRATING_SERVICES:
            migration = ServiceProcess(name, env, port, LOGS / f"{name}-migrate.log")
            try:
                migration.run("migrate", timeout_s=cfg.timeout_s)
            except LaunchError as exc:
                raise StackError(str(exc)) from None
        return spawn_detached(name, service_argv(name), env=env)

    ensure_running(
        name,
        f"services.{name}",
        f"http://127.0.0.1:{port}",
        start=start,
        ready=lambda: readyz(port),
        timeout_s=cfg.timeout_s,
    )


def service_ports(cfg: Config) -> list[tuple[str, int]]:
    """Services in start order (the gateway reads from the others), with their ports."""
    ports = {
        "chat": cfg.chat_port,
        "presence": cfg.presence_port,
        "notifier": cfg.notifier_port,
        "gateway": cfg.gateway_port,
    }
    return [(name, ports[name]) for name in SERVICES]
