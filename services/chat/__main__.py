"""``python -m services.chat [serve|migrate]``."""

from __future__ import annotations

import argparse
import asyncio

import uvloop

from services.chat.app import migrate, serve
from services.chat.settings import ChatSettings
from services.runtime.logs import configure_logging


def main() -> None:
    """Parse the command line, read settings once, run."""
    parser = argparse.ArgumentParser(prog="python -m services.chat")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = ChatSettings()
    configure_logging("chat", settings.log_level)
    if args.command == "migrate":
        applied = asyncio.run(migrate(settings))
        print(f"migrations applied: {applied or 'none (up to date)'}")  # noqa: T201
        return
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
