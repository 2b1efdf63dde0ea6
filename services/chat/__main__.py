"""``python -m services.chat [serve|migrate]``."""

from __future__ import annotations

from services.chat.app import migrate, serve
from services.chat.settings import ChatSettings
from services.runtime.lifecycle import run_cli

if __name__ == "__main__":
    run_cli(
        service="chat",
        load_settings=ChatSettings,
        log_level=lambda settings: settings.log_level,
        serve=serve,
        migrate=migrate,
    )
