"""``python -m services.presence [serve|migrate]``."""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from services.presence.app import migrate, serve
from services.presence.settings import PresenceSettings
from services.runtime.logs import configure_logging


def main() -> None:
    """Parse the command line, read settings once, run."""
    parser = argparse.ArgumentParser(prog="python -m services.presence")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = PresenceSettings()
    configure_logging("presence", settings.log_level)
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings))
        print(f"migrations applied: {applied or 'none (up to date)'}")  # noqa: T201
        return
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
