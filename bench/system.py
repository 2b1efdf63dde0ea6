"""The system under test: service processes of the bench's own, and who uses the CPU.

The bench never reuses the services that ``make up`` started: it runs its own chat, presence,
notifier and gateway (``python -m services.<name>`` through deploy/local/launcher.py, as
tests/integration/conftest.py does) against the local Kafka and
Postgres, with a fresh database and topic prefix, settings suited to load (no per-connection
rate limit in the way, a deep send queue) and a raised open-file limit.
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local.launcher import LaunchError, ServiceProcess, free_port, service_env

ROOT = Path(__file__).resolve().parents[1]
#: HS256 wants 32+ bytes of key.
AUTH_SECRET = "bench-secret-0123456789abcdef-0123456789"
#: Open files per process: 20k+ sockets on each side, plus Kafka and Postgres connections.
NOFILE = 200_000


class BenchError(Exception):
    """The bench could not set up or measure something; the message says what."""


def raise_nofile(limit: int = NOFILE) -> int:
    """Raise this process's open-file limit (root may raise the hard limit); returns the soft one.

    Used in the load generator and, through ``preexec_fn``, in the service processes.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for wanted in (limit, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, max(wanted, hard)))
            return wanted
        except (ValueError, OSError):
            continue
    return soft


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise BenchError(
            f"{name} is not set: run `make bench`, which starts the local Kafka and Postgres "
            "and exports their addresses"
        )
    return value


class Service(ServiceProcess):
    """One service process of the bench (deploy/local/launcher.py, as the stack and the tests
    launch theirs): run from ``source``, with a high open-file limit."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        port: int,
        log_path: Path,
        source: Path = ROOT,
        *,
        label: str | None = None,
    ) -> None:
        super().__init__(name, env, port, log_path, cwd=source, preexec_fn=raise_nofile)
        #: Its role in CPU accounting (``gateway-2`` for a second gateway).
        self.label = label or name

    async def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Poll ``/readyz`` until it answers 200.

        Raises:
            BenchError: the process exited or was not ready in time.
        """
        try:
            await super().wait_ready(timeout_s)
        except LaunchError as exc:
            raise BenchError(str(exc)) from None


async def create_database(admin_url: str, name: str) -> str:
    """Create the database ``name`` on the server of ``admin_url``; returns its URL.

    Raises:
        BenchError: the server cannot be reached.
    """
    try:
        admin = await asyncpg.connect(admin_url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise BenchError(f"cannot reach Postgres at DATABASE_URL: {exc}") from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


async def analyze(database_url: str) -> None:
    """Give every table of a database its statistics, and so every cached plan a fresh start.

    A database made for one run has none until autovacuum's first visit (its naptime: a
    minute): the generic plans cached by the first executions, made for near-empty tables,
    scan whole tables meanwhile (1,505 sequential scans of ``chat.messages`` reading 9.5M rows
    in one run), and whether that visit fell inside the warm-up or the measured steps doubled
    Postgres's CPU between identical runs (docs/performance.md). Tables in service have
    statistics; the steps measure that state. Run it after a warm-up, not on empty tables:
    statistics of empty tables make the plans no better.
    """
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def drop_database_quietly(admin_url: str, name: str) -> None:
    """Drop the database ``name`` (with its open connections) if the server can be reached:
    a bench stopping after a failure must not fail again on this."""
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def delete_topics_quietly(bootstrap: str, prefix: str) -> int:
    """Delete every topic named with ``prefix`` (a run's own); returns how many. Each run
    creates ~110 partitions: left behind, thousands of them made the broker's idle work, and so
    every later run's Kafka CPU, grow. Quiet for the same reason as the database's drop."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except (KafkaError, OSError):
        return 0
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return len(names)
    except (KafkaError, OSError):
        return 0
    finally:
        await admin.close()


@dataclass
class System:
    """chat, presence and the notifier (when the source has them) and gateway of the bench, on
    a database and topic prefix of their own."""

    chat: Service
    gateway: Service
    presence: Service | None
    notifier: Service | None
    database_url: str
    admin_url: str
    database: str
    log_dir: Path
    source: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    kafka_bootstrap: str = ""
    topic_prefix: str = ""
    # More processes of a service beside the first: gateways sharing its port (SO_REUSEPORT),
    # chat and notifier instances sharing their consumer group (partitions spread over them).
    more: list[Service] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        """The gateway's WebSocket endpoint."""
        return f"ws://127.0.0.1:{self.gateway.port}/v1/ws"

    @classmethod
    async def start(
        cls,
        *,
        log_dir: Path,
        extra_env: Mapping[str, str],
        source: Path = ROOT,
        gateways: int = 1,
        chats: int = 1,
        notifiers: int = 1,
    ) -> System:
        """Create the database, start chat, presence and the notifier, then the gateway, and wait
        until each is ready.

        ``source`` is the directory the services are run from (their ``services`` and
        ``schemas`` packages): the working tree by default, or a snapshot of a commit so that
        edits in progress elsewhere in the tree do not change what is measured.

        Raises:
            BenchError: infrastructure missing or a service failed to start.
        """
        kafka = _required_env("KAFKA_BOOTSTRAP_SERVERS")
        admin_url = _required_env("DATABASE_URL")
        run = uuid.uuid4().hex[:8]
        database = f"bench_{run}"
        database_url = await create_database(admin_url, database)
        log_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
        # Sources from before the presence service or the notifier existed run without them.
        has = {
            name: (source / "services" / name / "__main__.py").exists()
            for name in ("presence", "notifier")
        }
        ports = {
            name: free_port()
            for name in ("chat", "presence", "notifier", "gateway")
            if has.get(name, True)
        }
        prefix = f"bench{run}."
        env = service_env(
            os.environ,
            kafka_bootstrap=kafka,
            database_url=database_url,
            auth_secret=AUTH_SECRET,
            internal_token=secrets.token_urlsafe(32),
            ports=ports,
            topic_prefix=prefix,
        ) | {
            # Load comes from a few hundred connections each sending far above a human's rate.
            "RATE_PER_S": "100000",
            "RATE_BURST": "100000",
            # Thousands of connections from a few loopback addresses within seconds, and up to
            # 20k on one gateway (the idle scenario): the edge limits must not be what is measured.
            "HANDSHAKE_RATE_PER_S": "1000000",
            "HANDSHAKE_BURST": "1000000",
            "GATEWAY_MAX_CONNECTIONS": "1000000",
            "SEND_QUEUE_FRAMES": "4096",
            "LOG_LEVEL": "WARNING",
        }
        env |= dict(extra_env)
        if gateways > 1:
            env["GATEWAY_REUSE_PORT"] = "1"

        def service(name: str) -> Service:
            return Service(name, env, ports[name], log_dir / f"{name}.log", source)

        system = cls(
            chat=service("chat"),
            gateway=service("gateway"),
            presence=service("presence") if "presence" in ports else None,
            notifier=service("notifier") if "notifier" in ports else None,
            database_url=database_url,
            admin_url=admin_url,
            database=database,
            log_dir=log_dir,
            source=source,
            env=env,
            kafka_bootstrap=kafka,
            topic_prefix=prefix,
        )

        async def another(name: str, n: int, environ: dict[str, str], port: int) -> None:
            """Instance ``n`` of a service beside the first, started and ready."""
            label = f"{name}-{n}"
            more = Service(name, environ, port, log_dir / f"{label}.log", source, label=label)
            system.more.append(more)
            more.start()
            await more.wait_ready()

        try:
            for started in (system.chat, system.presence, system.notifier, system.gateway):
                if started is not None:
                    started.start()
                    await started.wait_ready()
                for name, count in (("chat", chats), ("notifier", notifiers)):
                    if started is not getattr(system, name):
                        continue
                    for n in range(2, count + 1):
                        # Its internal HTTP needs a port of its own; the group shares the
                        # partitions.
                        port = free_port()
                        variable = f"{name.upper()}_PORT"
                        await another(name, n, env | {variable: str(port)}, port)
            for n in range(2, gateways + 1):
                await another("gateway", n, env, ports["gateway"])
        except BaseException:
            await system.stop(drop_database=True)
            raise
        return system

    def pids(self) -> dict[str, int]:
        """Process id of each running service, by role."""
        found = {"gateway": self.gateway.pid, "chat": self.chat.pid}
        found |= {service.label: service.pid for service in self.more}
        if self.presence is not None:
            found["presence"] = self.presence.pid
        if self.notifier is not None:
            found["notifier"] = self.notifier.pid
        return found

    async def restart_gateway(self) -> None:
        """A fresh gateway process (a clean memory baseline for the idle scenario)."""
        self.gateway.stop()
        port = free_port()
        env = self.env | {"GATEWAY_PORT": str(port)}
        self.gateway = Service("gateway", env, port, self.log_dir / "gateway.log", self.source)
        self.gateway.start()
        await self.gateway.wait_ready()

    async def stop(self, *, drop_database: bool) -> None:
        """Stop the services and (optionally) drop the bench database and the run's topics."""
        for extra in self.more:
            extra.stop()
        for service in (self.gateway, self.notifier, self.presence, self.chat):
            if service is not None:
                service.stop()
        if drop_database:
            await drop_database_quietly(self.admin_url, self.database)
            await delete_topics_quietly(self.kafka_bootstrap, self.topic_prefix)


# --- who uses the CPU --------------------------------------------------------------------------


def cpu_seconds(process: psutil.Process) -> float:
    """User plus system CPU seconds ``process`` has used so far."""
    times = process.cpu_times()
    return float(times.user) + float(times.system)


def _listening_pid(port: int) -> int | None:
    """The process listening on loopback ``port``, if any (root sees every process's sockets)."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                return int(conn.pid) if conn.pid else None
    return None


def _port_of(address: str, default: int) -> int:
    """The port of ``host:port`` or of a ``postgresql://…@host:port/db`` URL."""
    found = re.search(r":(\d+)(?:/|$|,)", address.rsplit("@", 1)[-1])
    return int(found.group(1)) if found else default


def find_kafka() -> psutil.Process | None:
    """This deployment's broker: the JVM listening on KAFKA_BOOTSTRAP_SERVERS' port.

    Several engineers' brokers may run on one machine; the first JVM named ``kafka.Kafka``
    would be anyone's.
    """
    port = _port_of(os.environ.get("KAFKA_BOOTSTRAP_SERVERS", ""), 9092)
    pid = _listening_pid(port)
    return psutil.Process(pid) if pid is not None else None


def _find_postmaster() -> psutil.Process | None:
    """The Postgres server listening on DATABASE_URL's port (its postmaster)."""
    port = _port_of(os.environ.get("DATABASE_URL", ""), 5432)
    pid = _listening_pid(port)
    if pid is None:
        return None
    process = psutil.Process(pid)
    with contextlib.suppress(psutil.Error):
        while process.parent() is not None and process.parent().name() == "postgres":
            process = process.parent()
    return process


def _postgres_seconds(postmaster: psutil.Process) -> float:
    """The server's own CPU, its exited children's (reaped) and its live backends'."""
    times = postmaster.cpu_times()
    total = float(times.user) + float(times.system)
    total += float(times.children_user) + float(times.children_system)
    for child in postmaster.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += cpu_seconds(child)
    return total


_MACHINE_BUSY = "_machine_busy"


class CpuMeter:
    """CPU seconds (user + system) of each process of the system, by role.

    Roles: ``gateway``, ``chat``, ``presence``, ``notifier``, ``kafka`` (the broker's JVM),
    ``postgres`` (server and all its backends), ``loadgen`` (this process), and ``other``: the
    machine's busy time not accounted for by those (other programs, kernel threads).
    Infrastructure elsewhere is left out.
    """

    def __init__(self, pids: Callable[[], dict[str, int]]) -> None:
        self._pids = pids
        self._kafka = find_kafka()
        self._postmaster = _find_postmaster()

    def snapshot(self) -> dict[str, float]:
        """Cumulative CPU seconds by role, now."""
        readings: dict[str, float] = {}
        for role, pid in self._pids().items():
            with contextlib.suppress(psutil.Error):
                readings[role] = cpu_seconds(psutil.Process(pid))
        if self._kafka is not None:
            with contextlib.suppress(psutil.Error):
                readings["kafka"] = cpu_seconds(self._kafka)
        if self._postmaster is not None:
            with contextlib.suppress(psutil.Error):
                readings["postgres"] = _postgres_seconds(self._postmaster)
        # The load generator and its helper processes (idle-connection workers).
        me = psutil.Process(os.getpid())
        loadgen = cpu_seconds(me)
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.pid not in self._pids().values():
                    loadgen += cpu_seconds(child)
        readings["loadgen"] = loadgen
        machine_times = psutil.cpu_times()
        busy = float(machine_times.user) + float(machine_times.nice) + float(machine_times.system)
        busy += float(getattr(machine_times, "irq", 0.0)) + float(
            getattr(machine_times, "softirq", 0.0)
        )
        readings[_MACHINE_BUSY] = busy
        return readings

    @contextlib.contextmanager
    def measure(self) -> Iterator[CpuWindow]:
        """CPU used by each role during the ``with`` block (filled in when it ends)."""
        window = CpuWindow()
        before = self.snapshot()
        started = time.monotonic()
        try:
            yield window
        finally:
            after = self.snapshot()
            window.wall_s = time.monotonic() - started
            used = {role: after[role] - before[role] for role in after if role in before}
            busy = used.pop(_MACHINE_BUSY, 0.0)
            # Everything else the machine did meanwhile (another build or test run shows here).
            used["other"] = max(busy - sum(used.values()), 0.0)
            window.seconds = {role: round(seconds, 3) for role, seconds in used.items()}


@dataclass
class CpuWindow:
    """CPU seconds per role over a wall-clock window."""

    wall_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, object]:
        """CPU seconds and share of one core per role (1.0 = one core busy all along)."""
        wall = max(self.wall_s, 1e-9)
        return {
            "wall_s": round(self.wall_s, 2),
            "cpu_s": self.seconds,
            "cores": {role: round(s / wall, 3) for role, s in self.seconds.items()},
        }


def rss_bytes(pid: int) -> int:
    """Resident set size of a process."""
    return int(psutil.Process(pid).memory_info().rss)


def machine() -> dict[str, object]:
    """Cores, memory and the software the figures were taken with."""
    import platform

    cpu_model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(float(psutil.virtual_memory().total) / 2**30, 1),
        "cpu_model": cpu_model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        **_idle_polling(),
    }


def _idle_polling() -> dict[str, object]:
    """How an idle CPU waits, where the kernel says. On this project's VMs the guest halts at
    once (``guest_halt_poll_ns`` 0), and a round trip between processes on the two CPUs then
    costs 4-5x the CPU it costs with halt-polling (docs/performance.md, "What the CPU at 1,000
    msgs/s is"): recorded so that runs are compared like with like."""
    facts: dict[str, object] = {}
    with contextlib.suppress(OSError):
        facts["cpuidle_driver"] = (
            Path("/sys/devices/system/cpu/cpuidle/current_driver").read_text().strip()
        )
    with contextlib.suppress(OSError, ValueError):
        facts["guest_halt_poll_ns"] = int(
            Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns").read_text()
        )
    return facts
