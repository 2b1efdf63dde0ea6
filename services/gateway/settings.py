"""Gateway settings, read once from the environment in ``main``."""

from __future__ import annotations

import base64
import binascii
import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.gateway.domain.limits import Network, parse_networks
from services.runtime.settings import InternalAuthSettings, KafkaSettings


class AuthSettings(BaseSettings):
    """The token secret alone: all the ``token`` command needs."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # HS256 secret shared with the site's auth (NextAuth); AUTH_SECRET wins over NEXTAUTH_SECRET.
    auth_secret: str = Field(validation_alias=AliasChoices("AUTH_SECRET", "NEXTAUTH_SECRET"))
    # When set, tokens must carry this `iss` (and the `token` command mints it).
    auth_issuer: str | None = None
    # When set, tokens must carry this `aud` (a string, or a list naming it).
    auth_audience: str | None = None


class GatewaySettings(KafkaSettings, AuthSettings, InternalAuthSettings):
    """Everything the gateway reads from the environment."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # Several gateway processes on one host share the port (SO_REUSEPORT: the kernel spreads
    # new connections over them); each tails the delivery partitions of its own users.
    gateway_reuse_port: bool = False
    # Comma-separated Origins allowed to open WebSockets; requests without Origin are allowed.
    gateway_allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Where the chat service's internal HTTP API is.
    chat_url: str = "http://127.0.0.1:8001"
    # Where the presence service's internal HTTP API is.
    presence_url: str = "http://127.0.0.1:8002"
    # Where the notifier's internal HTTP API is (it owns the notifications stream). Unset until
    # the notifier is deployed: sync then echoes that stream's cursor unchanged.
    notifier_url: str | None = None
    # The notifier's VAPID public key (base64url, uncompressed P-256 point): announced in hello
    # and served at GET /v1/push/vapid-public-key. Only the public half: the gateway signs
    # nothing. Unset: Web Push is not offered.
    vapid_public_key: str | None = None
    # How often this gateway tells presence it is alive (presence expires silent gateways).
    presence_heartbeat_interval_ms: int = Field(default=5000, ge=100)
    # Names this process in logs, CloudEvents sources, reply routing and the Kafka client id.
    instance_id: str = Field(default_factory=lambda: f"gw-{socket.gethostname()}-{os.getpid()}")
    # Limits announced in hello and enforced.
    max_frame_bytes: int = Field(default=65536, ge=1024)
    max_body_chars: int = Field(default=4000, ge=1, le=4000)
    rate_per_s: int = Field(default=20, ge=1)
    rate_burst: int = Field(default=40, ge=1)
    # Refusals in a row after which a client that ignores rate limiting is closed with 4008.
    rate_abuse_limit: int = Field(default=50, ge=1)
    heartbeat_s: int = Field(default=25, ge=1)
    # Frames waiting for a slow client before it is closed with 4009.
    send_queue_frames: int = Field(default=256, ge=1)
    # Most connections this gateway holds (then 503 before the upgrade); lowered at start to
    # what RLIMIT_NOFILE leaves.
    gateway_max_connections: int = Field(default=10000, ge=1)
    # Connections of one user on this gateway; a newer one closes the oldest with 4010.
    max_connections_per_user: int = Field(default=20, ge=1)
    # Handshakes (upgrades and presence reads) per client address: rate and burst (then 429).
    handshake_rate_per_s: float = Field(default=20.0, gt=0)
    handshake_burst: int = Field(default=100, ge=1)
    # Client addresses the handshake limiter tracks at most (its memory bound).
    handshake_max_sources: int = Field(default=100_000, ge=1)
    # Comma-separated proxies (addresses or CIDR networks) whose X-Forwarded-For names the
    # client; empty: the peer address is the client.
    gateway_trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Load shedding (services/gateway/domain/shedding.py): when the oldest request handed on has
    # waited this long for its answer, and at least gateway_overload_min_pending wait, new
    # commands are answered `unavailable` with retry_after_ms instead of joining the queue.
    gateway_overload_wait_ms: int = Field(default=500, ge=1)
    gateway_overload_min_pending: int = Field(default=64, ge=1)
    # Commands of one connection enqueued to Kafka and not yet acknowledged, at most (past it
    # the connection's frames are read more slowly).
    gateway_max_unconfirmed: int = Field(default=64, ge=1)
    # permessage-deflate costs ~100 KiB per connection and invites decompression bombs: off
    # unless asked for; when on, max_frame_bytes caps the decompressed size.
    compression: Literal["none", "deflate"] = "none"
    # A delivery partition with no user left is released after this long (reloads are cheap).
    partition_release_delay_ms: int = Field(default=30000, ge=0)
    # How long shutdown waits for queued frames to flush.
    drain_timeout_ms: int = Field(default=5000, ge=0)
    log_level: str = "INFO"
    # Development only (services/gateway/devpage.py): serve the SDK demo under /dev/ ...
    gateway_dev_page: bool = False
    # ... and mint a token for any user at /dev/token. Never on in a deployment.
    gateway_dev_tokens: bool = False
    # Where the SDK and its demo are (built by `make sdk`).
    gateway_dev_root: Path = Path(__file__).resolve().parents[2] / "clients" / "js"

    def stream_owners(self) -> dict[str, str]:
        """Base URL of the owner of each durable stream this deployment serves, by stream."""
        owners = {"chat": self.chat_url, "notifications": self.notifier_url}
        return {stream: url for stream, url in owners.items() if url}

    def allowed_origins(self) -> frozenset[str]:
        """The allow-list as a set."""
        return frozenset(
            origin.strip() for origin in self.gateway_allowed_origins if origin.strip()
        )

    @field_validator("vapid_public_key")
    @classmethod
    def _public_point(cls, value: str | None) -> str | None:
        if not value:
            return None
        try:
            point = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except (binascii.Error, ValueError):
            raise ValueError(
                "VAPID_PUBLIC_KEY must be base64url of an uncompressed P-256 point (65 bytes):"
                " `python -m services.notifier.vapid public-key` prints it"
            ) from None
        if len(point) != 65:
            raise ValueError("VAPID_PUBLIC_KEY must be an uncompressed P-256 point (65 bytes)")
        return value

    def trusted_proxies(self) -> tuple[Network, ...]:
        """The trusted proxies as networks."""
        return parse_networks(self.gateway_trusted_proxies)

    @field_validator("gateway_allowed_origins", "gateway_trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        return value.split(",") if isinstance(value, str) else value

    @field_validator("gateway_trusted_proxies", mode="after")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        entries = [entry.strip() for entry in value if entry.strip()]
        parse_networks(entries)
        return entries
