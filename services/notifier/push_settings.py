"""Web Push settings, read once from the environment (the notifier's settings extend them)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.notifier.domain.push import (
    DEFAULT_ENDPOINT_ALLOWLIST,
    EndpointAllowList,
    RetryPolicy,
)


class PushSettings(BaseSettings):
    """Everything Web Push reads from the environment. Push is off unless both VAPID values
    are set (``make up`` sets a development pair; production sets its own)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # The VAPID private key: base64url of the raw 32-byte P-256 scalar (what `python -m
    # services.notifier.vapid generate` and the web-push tools print), or a PEM (PKCS#8 or SEC1).
    vapid_private_key: SecretStr | None = None
    # Who runs this sender, for push services to contact: a mailto: or https: URL (RFC 8292).
    vapid_subject: str | None = None
    # Comma-separated hosts push endpoints may point at; `*.` wildcards; https only, except
    # that a host listed exactly may be plain http (tests: 127.0.0.1).
    push_endpoint_allowlist: str = DEFAULT_ENDPOINT_ALLOWLIST
    # Pushes in flight at once (all push services together), and per push service (origin):
    # a push service that hangs holds at most its own share.
    push_concurrency: int = Field(default=64, ge=1)
    push_per_origin_concurrency: int = Field(default=16, ge=1)
    # Bound on one push request, connecting included; then it counts as a timeout (retried).
    push_request_timeout_ms: int = Field(default=10_000, ge=100)
    # Retry backoff: first wait, longest wait (before jitter), and the bound on the total time
    # from staging after which a push is given up.
    push_retry_base_ms: int = Field(default=1_000, ge=1)
    push_retry_max_ms: int = Field(default=300_000, ge=1)
    push_give_up_after_ms: int = Field(default=3_600_000, ge=1)
    # The worker wakes when jobs are staged (LISTEN/NOTIFY); this poll is the safety net.
    push_poll_interval_ms: int = Field(default=1_000, ge=10)

    @property
    def push_enabled(self) -> bool:
        """Whether a VAPID key pair is configured (else no push is staged or sent)."""
        return self.vapid_private_key is not None and self.vapid_subject is not None

    @property
    def endpoint_allowlist(self) -> EndpointAllowList:
        """The parsed allow-list (validated at start-up)."""
        return EndpointAllowList.parse(self.push_endpoint_allowlist)

    @property
    def retry_policy(self) -> RetryPolicy:
        """The backoff and give-up bounds as the domain takes them."""
        return RetryPolicy(
            base=timedelta(milliseconds=self.push_retry_base_ms),
            cap=timedelta(milliseconds=self.push_retry_max_ms),
            give_up_after=timedelta(milliseconds=self.push_give_up_after_ms),
        )

    @field_validator("push_endpoint_allowlist")
    @classmethod
    def _parsable(cls, value: str) -> str:
        EndpointAllowList.parse(value)
        return value

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("mailto:", "https://")):
            raise ValueError("VAPID_SUBJECT must be a mailto: or https: URL (RFC 8292)")
        return value

    @model_validator(mode="after")
    def _key_loads(self) -> PushSettings:
        if self.vapid_private_key is not None:
            # Imported here: the key module needs the VAPID library, the settings module not.
            from services.notifier.vapid import load_private_key

            load_private_key(self.vapid_private_key.get_secret_value())
        return self
