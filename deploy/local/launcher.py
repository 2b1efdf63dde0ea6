"""Launching the services as processes: one way for the local stack, the tests and the bench.

A service runs as ``python -m services.<name>`` with an environment that says where everything
is (:func:`service_env`), its output appended to a log file, readiness polled on ``/readyz``,
stopped with SIGTERM (SIGKILL after a bound) or killed as a crash (:class:`ServiceProcess`).
deploy/local/stack.py keeps its processes detached and finds them again through pid files;
tests/integration/harness.py and bench/system.py own theirs.

Standard library only, like stack.py, which imports it: stack.py must run before the venv
exists (``make down`` after a failed install) and uses nothing else.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The services in start order: the gateway reads from the others.
SERVICES = ("chat", "presence", "notifier", "gateway")
#: Services other services reach through ``<NAME>_URL`` (the gateway, for sync and presence).
#: A service named here but not launched has its URL removed from the environment handed on.
REACHABLE = ("chat", "presence", "notifier")


class LaunchError(Exception):
    """A service process exited early or did not become ready; the message has its log's end."""


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(
    base: Mapping[str, str],
    *,
    kafka_bootstrap: str,
    database_url: str,
    auth_secret: str,
    ports: Mapping[str, int],
    internal_token: str | None = None,
    topic_prefix: str | None = None,
) -> dict[str, str]:
    """The environment of the services of one deployment on this machine.

    The caller's environment (``base``), with where everything is set: Kafka, Postgres, the
    token secret, the internal API token, ``<NAME>_PORT`` of every service in ``ports`` and
    ``<NAME>_URL`` of those others reach. Left out: the URL of a reachable service that is not
    launched (a shell's ``NOTIFIER_URL`` would send every sync to a service that is not there) and
    ``PYTHONASYNCIODEBUG`` (debug mode, right for the tests' own loop, would slow the services
    and flood their logs).

    Args:
        base: the environment to start from.
        kafka_bootstrap: ``KAFKA_BOOTSTRAP_SERVERS``.
        database_url: ``DATABASE_URL``.
        auth_secret: ``AUTH_SECRET``.
        ports: the launched services and their ports (loopback).
        internal_token: ``INTERNAL_TOKEN`` (services refuse to start without one); None keeps
            the one in ``base``, if any.
        topic_prefix: ``KAFKA_TOPIC_PREFIX``, when the deployment shares a cluster.
    """
    dropped = {"PYTHONASYNCIODEBUG"} | {
        f"{name.upper()}_URL" for name in REACHABLE if name not in ports
    }
    env = {key: value for key, value in base.items() if key not in dropped}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        DATABASE_URL=database_url,
        AUTH_SECRET=auth_secret,
        PYTHONUNBUFFERED="1",
    )
    if internal_token is not None:
        env["INTERNAL_TOKEN"] = internal_token
    if topic_prefix is not None:
        env["KAFKA_TOPIC_PREFIX"] = topic_prefix
    for name, port in ports.items():
        env[f"{name.upper()}_PORT"] = str(port)
        if name in REACHABLE:
            env[f"{name.upper()}_URL"] = f"http://127.0.0.1:{port}"
    return env


def service_argv(name: str, *args: str) -> list[str]:
    """``python -m services.<name> [args]`` with this interpreter."""
    return [sys.executable, "-m", f"services.{name}", *args]


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str],
    cwd: Path = REPO,
    detached: bool = False,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output appended to ``log_path`` and no stdin.

    ``detached`` gives it a session of its own: it outlives the caller and its terminal, and
    the whole process group can be signalled.
    """
    with log_path.open("ab") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=detached,
            preexec_fn=preexec_fn,
        )


def readyz(port: int, *, timeout_s: float = 2.0) -> bool:
    """Whether ``GET /readyz`` on a loopback port answers 200."""
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/readyz", timeout=timeout_s
        ) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def tail(path: Path, lines: int = 40) -> str:
    """The end of a log file, to put the cause of a failure right into the error."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


class ServiceProcess:
    """One ``python -m services.<name>`` process.

    Args:
        name: the service (module under ``services``).
        env: its environment (see :func:`service_env`).
        port: its HTTP port (``/readyz``).
        log_path: where its output is appended.
        cwd: the directory it runs from: the tree whose ``services`` it runs.
        detached: in a session of its own (outlives the caller).
        preexec_fn: run in the child before it starts (e.g. raising its open-file limit).
    """

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        port: int,
        log_path: Path,
        *,
        cwd: Path = REPO,
        detached: bool = False,
        preexec_fn: Callable[[], object] | None = None,
    ) -> None:
        self.name = name
        self.env = env
        self.port = port
        self.log_path = log_path
        self.cwd = cwd
        self.detached = detached
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        """Start serving."""
        self.process = spawn(
            service_argv(self.name),
            log_path=self.log_path,
            env=self.env,
            cwd=self.cwd,
            detached=self.detached,
            preexec_fn=self.preexec_fn,
        )
        return self.process

    def run(self, *args: str, timeout_s: float) -> None:
        """Run a command of the service to its end (``migrate``), output to the log.

        Raises:
            LaunchError: it failed or took longer than ``timeout_s``.
        """
        command = spawn(
            service_argv(self.name, *args), log_path=self.log_path, env=self.env, cwd=self.cwd
        )
        try:
            code = command.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            command.kill()
            command.wait()
            raise LaunchError(
                f"{self.name} {' '.join(args)} took over {timeout_s:.0f}s; see {self.log_path}"
            ) from None
        if code != 0:
            raise LaunchError(
                f"{self.name} {' '.join(args)} failed; see {self.log_path}:\n{self.log_tail()}"
            )

    @property
    def pid(self) -> int:
        """Process id.

        Raises:
            LaunchError: it was never started.
        """
        if self.process is None:
            raise LaunchError(f"{self.name} was never started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether it was started and has not exited."""
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        """Whether its ``/readyz`` answers 200."""
        return readyz(self.port)

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll ``/readyz`` until it answers 200.

        Raises:
            LaunchError: the process exited, or was not ready within ``timeout_s``.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                raise LaunchError(f"{self.name} exited early:\n{self.log_tail()}")
            if await asyncio.to_thread(self.ready):
                return
            await asyncio.sleep(0.1)
        raise LaunchError(f"{self.name} not ready in {timeout_s:.0f} s:\n{self.log_tail()}")

    def kill(self, *, wait_s: float = 10.0) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        if self.process is None:
            raise LaunchError(f"{self.name} was never started")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=wait_s)

    def stop(self, *, wait_s: float = 20.0) -> None:
        """SIGTERM (the graceful path); SIGKILL when it has not exited within ``wait_s``."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of its log."""
        return tail(self.log_path, lines)
