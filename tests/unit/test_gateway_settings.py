"""Which service the gateway asks for each durable stream."""

from __future__ import annotations

from services.gateway.settings import GatewaySettings


# Every value is passed: settings also read the environment, where a developer's shell may
# name a notifier.
def settings(
    *, chat_url: str = "http://chat:8001", notifier_url: str | None = None
) -> GatewaySettings:
    return GatewaySettings(
        kafka_bootstrap_servers="k:9092",
        auth_secret="s" * 32,
        internal_token="t" * 32,
        chat_url=chat_url,
        notifier_url=notifier_url,
    )


def test_without_a_notifier_only_chat_is_served() -> None:
    assert settings().stream_owners() == {"chat": "http://chat:8001"}


def test_notifier_url_adds_the_notifications_stream() -> None:
    assert settings(notifier_url="http://notifier:8003").stream_owners() == {
        "chat": "http://chat:8001",
        "notifications": "http://notifier:8003",
    }


def test_an_empty_notifier_url_counts_as_unset() -> None:
    assert settings(notifier_url="").stream_owners() == {"chat": "http://chat:8001"}
