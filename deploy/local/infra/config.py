"""Where the local stack keeps everything (.local/), its fixed names, and its settings read
from the environment (:class:`Config`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# deploy/local: the pom and the broker's logging configuration sit beside stack.py.
HERE = Path(__file__).resolve().parents[1]
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


def prepare_dirs() -> None:
    """Create the .local layout; a fresh clone has none of it."""
    for directory in (LOGS, RUN, KAFKA_DIR, PG_DIR):
        directory.mkdir(parents=True, exist_ok=True)
