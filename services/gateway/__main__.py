"""``python -m services.gateway [serve | token --sub USER [--ttl-s N] [--name NAME]]``."""

from __future__ import annotations

import argparse
import time

import uvloop

from services.gateway.app import serve
from services.gateway.domain.auth import mint_token
from services.gateway.settings import AuthSettings, GatewaySettings
from services.runtime.logs import configure_logging


def main() -> None:
    """Parse the command line, read settings once, run."""
    parser = argparse.ArgumentParser(prog="python -m services.gateway")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the gateway (default)")
    token = commands.add_parser("token", help="mint a dev token signed with AUTH_SECRET")
    token.add_argument("--sub", required=True, help="user id")
    token.add_argument("--ttl-s", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--name", default=None, help="display name claim")
    args = parser.parse_args()
    if args.command == "token":
        auth = AuthSettings()
        print(  # noqa: T201
            mint_token(
                secret=auth.auth_secret,
                user_id=args.sub,
                expires_at=int(time.time()) + args.ttl_s,
                name=args.name,
                issuer=auth.auth_issuer,
                audience=auth.auth_audience,
            )
        )
        return
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
