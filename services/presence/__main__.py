"""``python -m services.presence [serve|migrate]``."""

from __future__ import annotations

from services.presence.app import migrate, serve
from services.presence.settings import PresenceSettings
from services.runtime.lifecycle import run_cli

if __name__ == "__main__":
    run_cli(
        service="presence",
        load_settings=PresenceSettings,
        log_level=lambda settings: settings.log_level,
        serve=serve,
        migrate=migrate,
    )
