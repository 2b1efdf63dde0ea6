"""Detached processes found again through pid files: start, wait until ready, stop; and the
small output and port helpers every component shares."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from deploy.local.infra.config import LOGS, RUN, StackError
from deploy.local.launcher import spawn, tail


def say(message: str) -> None:
    """Print a progress line; a CLI's output, not a log record, so no logging framework."""
    sys.stdout.write(f"stack: {message}\n")
    sys.stdout.flush()


def cmdline(pid: int) -> str:
    """Return a process's command line ('' when it is gone), read from /proc."""
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def pid_file(name: str) -> Path:
    """Where the pid of the detached process ``name`` is recorded."""
    return RUN / f"{name}.pid"


def running_pid(name: str, marker: str) -> int | None:
    """Return the recorded pid of ``name`` if that process still runs ``marker``, else None."""
    try:
        pid = int(pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if marker in cmdline(pid) else None


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_free_port(port: int, what: str, hint: str) -> None:
    """Fail early and clearly when a foreign process already holds a port we want to listen on."""
    if port_open(port):
        raise StackError(f"port {port} for {what} is already in use by another process; {hint}")


def wait_for(
    check: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    log_path: Path,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` with backoff until it passes, the process dies, or time runs out.

    Raises:
        StackError: with the tail of ``log_path``, so a failed start explains itself.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while not check():
        if alive is not None and not alive():
            raise StackError(f"{what} exited during start-up; see {log_path}:\n{tail(log_path)}")
        if time.monotonic() >= deadline:
            raise StackError(
                f"{what} not ready after {timeout_s:.0f}s; see {log_path}:\n{tail(log_path)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.5)


def spawn_detached(
    name: str, argv: Sequence[str], *, env: Mapping[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` detached (own session, output to .local/logs/<name>.log) and record its pid.

    A new session keeps the process alive after this script and its terminal or ``make`` exit,
    and lets ``down`` signal the whole process group. The caller gets the Popen handle because
    ``poll()`` on one's own child is the reliable way to notice an early exit (and reaps it).
    """
    proc = spawn(argv, log_path=LOGS / f"{name}.log", env=env, detached=True)
    pid_file(name).write_text(f"{proc.pid}\n")
    return proc


def stop_pid(name: str, marker: str, *, timeout_s: float, kill: bool = False) -> bool:
    """SIGTERM the process group of ``name``, SIGKILL it after ``timeout_s``; True if it ran.

    ``kill`` sends SIGKILL at once: a crash, with no shutdown code run (fault injection).
    """
    pid = running_pid(name, marker)
    if pid is None:
        pid_file(name).unlink(missing_ok=True)
        return False
    signal_group(pid, signal.SIGKILL if kill else signal.SIGTERM)
    if not wait_gone(pid, marker, timeout_s):
        say(f"{name} still running after {timeout_s:.0f}s; sending SIGKILL")
        signal_group(pid, signal.SIGKILL)
        if not wait_gone(pid, marker, 10):
            raise StackError(f"{name} (pid {pid}) survived SIGKILL; check it with ps")
    pid_file(name).unlink(missing_ok=True)
    return True


def wait_gone(pid: int, marker: str, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for process ``pid`` to end; True once it has."""
    deadline = time.monotonic() + timeout_s
    while marker in cmdline(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the session we started (the process leads its own group); ignore one that ended."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def ensure_running(
    name: str,
    marker: str,
    address: str,
    *,
    start: Callable[[], subprocess.Popen[bytes]],
    ready: Callable[[], bool],
    timeout_s: float,
) -> None:
    """Find ``name`` running through its pid file or ``start()`` it, then wait until ``ready``.

    The same shape serves the broker and the services, so every one of them is idempotent,
    reports itself the same way, and fails with the tail of its own log.
    """
    began = time.monotonic()
    pid = running_pid(name, marker)
    if pid is None:
        child = start()
        wait_for(
            ready,
            what=name,
            timeout_s=timeout_s,
            log_path=LOGS / f"{name}.log",
            alive=lambda: child.poll() is None,
        )
        elapsed = time.monotonic() - began
        say(f"{name} started (pid {child.pid}) at {address} in {elapsed:.1f}s")
    else:
        wait_for(ready, what=name, timeout_s=timeout_s, log_path=LOGS / f"{name}.log")
        say(f"{name} already running (pid {pid}) at {address}")
