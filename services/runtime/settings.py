"""Settings shared by every service, read once from the environment in each ``main``."""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Shortest internal token accepted: 128 bits in URL-safe base64 (``secrets.token_urlsafe(16)``).
MIN_INTERNAL_TOKEN_CHARS = 22


class KafkaSettings(BaseSettings):
    """Where Kafka is and how topics are laid out."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Comma-separated host:port list.
    kafka_bootstrap_servers: str
    # Prepended to every topic name; lets tests and tenants share a cluster without clashing.
    kafka_topic_prefix: str = ""
    # Partitions of chat.commands.v1 / chat.events.v1 (parallelism of the chat service).
    chat_partitions: int = Field(default=8, ge=1)
    # Partitions of presence.commands.v1 / presence.typing.v1.
    presence_partitions: int = Field(default=8, ge=1)
    # Partitions of delivery.frames.v1 (parallelism and granularity of gateway tailing).
    delivery_partitions: int = Field(default=16, ge=1)
    # Partitions of notifier.commands.v1 (parallelism of the notifier).
    notifier_partitions: int = Field(default=8, ge=1)
    # Partitions of jobs.events.v1 and applications.events.v1 when we create them (the teams
    # publishing there may have created them first; an existing topic is left as it is).
    jobs_partitions: int = Field(default=8, ge=1)
    applications_partitions: int = Field(default=8, ge=1)
    # Partitions of users.erasure.v1 and users.erased.v1 (erasures are rare: parallelism of
    # erasures of different users).
    erasure_partitions: int = Field(default=4, ge=1)
    # Retention of the topics whose records carry what users wrote or own (chat commands and
    # facts: message bodies; notifier commands: push endpoints): how long such data outlives
    # its erasure in Kafka (docs/erasure.md). 7 days, Kafka's default, made explicit.
    kafka_content_retention_ms: int = Field(default=7 * 86_400_000, ge=60_000)
    # Compacted topics: a record superseded by a newer one of its key (a membership fact naming
    # an erased user) is compacted away within this.
    kafka_max_compaction_lag_ms: int = Field(default=86_400_000, ge=60_000)
    # Replication factor of created topics (1 for the local single broker).
    kafka_replication_factor: int = Field(default=1, ge=1)
    # How long this process's producer waits to fill a batch before sending it (docs/
    # performance.md: measured per service; 0 sends as soon as the previous request returned).
    kafka_linger_ms: int = Field(default=0, ge=0, le=100)


class DatabaseSettings(BaseSettings):
    """Where Postgres is."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # postgresql://user@host:port/db
    database_url: str
    # Connections per process.
    database_pool_min: int = Field(default=2, ge=1)
    database_pool_max: int = Field(default=10, ge=1)


class DatabaseServiceSettings(DatabaseSettings):
    """What every service that owns a schema (and so an outbox) reads."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # The relay re-publishes outbox rows older than the grace period, every interval.
    outbox_relay_interval_ms: int = Field(default=1000, ge=10)
    outbox_relay_grace_ms: int = Field(default=5000, ge=0)


class InternalAuthSettings(BaseSettings):
    """The shared secret of internal HTTP APIs (gateways reading chat's streams and presence).

    Required by default: a service without a token refuses to start, unless
    ``INTERNAL_AUTH=disabled`` says the deployment wants internal APIs open (local development
    only). Errors never show the values read (``hide_input_in_errors``): a validation message
    ends up in logs, and these are secrets.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    # Sent and required as X-Internal-Token; empty counts as unset.
    internal_token: str | None = None
    # A file holding the token (compose generates one on a shared volume); INTERNAL_TOKEN wins.
    internal_token_file: Path | None = None
    # "required" (the default) or "disabled": internal APIs open to anyone who reaches them.
    internal_auth: Literal["required", "disabled"] = Field(
        default="required", validate_default=True
    )

    @field_validator("internal_auth", mode="after")
    @classmethod
    def _token_unless_disabled(cls, value: str, info: ValidationInfo) -> str:
        if value == "disabled":
            return value
        token = _read_token(info.data.get("internal_token"), info.data.get("internal_token_file"))
        if token is None:
            raise ValueError(
                "no internal token: set INTERNAL_TOKEN (or INTERNAL_TOKEN_FILE), the same for "
                "every service of the deployment; or INTERNAL_AUTH=disabled for development"
            )
        if len(token) < MIN_INTERNAL_TOKEN_CHARS:
            raise ValueError(
                f"the internal token is shorter than {MIN_INTERNAL_TOKEN_CHARS} characters; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    def required_internal_token(self) -> str | None:
        """The token internal APIs require and clients send; None when auth is disabled."""
        if self.internal_auth == "disabled":
            return None
        return _read_token(self.internal_token, self.internal_token_file)


def _read_token(token: object, path: object) -> str | None:
    """The token from the variable, else from the file; None when neither holds one."""
    if isinstance(token, str) and token.strip():
        return token.strip()
    if isinstance(path, Path):
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        return text or None
    return None


class ServiceSettings(KafkaSettings, DatabaseServiceSettings, InternalAuthSettings):
    """What every schema-owning service reads, beside its own settings (a subclass)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Names this process in logs, CloudEvents sources and the Kafka client id; each service's
    # settings give a default naming the service, host and pid.
    instance_id: str
    log_level: str = "INFO"
    # Frames per sync answer of the service's streams when the client gives no limit.
    sync_default_limit: int = Field(default=200, ge=1, le=1000)
    # How long the keys of inbound events are remembered by consumers that deduplicate them.
    inbound_retention_hours: int = Field(default=168, ge=1)

    @property
    @abstractmethod
    def http_address(self) -> tuple[str, int]:
        """(host, port) of the service's internal HTTP server."""
