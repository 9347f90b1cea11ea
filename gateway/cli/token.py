"""`gateway token`: mint a client-signed token from an access key, as the client library does."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any
from urllib.parse import urlsplit

from gateway.cli.common import CommandError, add_common, output


def register(commands: Any) -> None:
    token = commands.add_parser(
        "token",
        help="mint a token from an access key",
        description="Mint a client-signed JWT from an access key (as the client library and Authress's "
        "ServiceClientTokenProvider do). The key comes from --access-key, $GATEWAY_ACCESS_KEY, or stdin "
        "with --access-key -.",
    )
    add_common(token)
    token.add_argument("--access-key", metavar="KEY", help="the access key, or - to read it from stdin")
    token.add_argument(
        "--issuer-origin", metavar="URL", help="the gateway's public_url (default: from --config)"
    )
    token.add_argument(
        "--lifetime",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="how long the token is valid: 60 to 86400 seconds (default 3600)",
    )
    token.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateway.client import ServiceClientTokenProvider

    key = args.access_key or os.environ.get("GATEWAY_ACCESS_KEY")
    if key == "-":
        key = sys.stdin.readline()
    if not key:
        raise CommandError("no access key: use --access-key, $GATEWAY_ACCESS_KEY or --access-key -")
    origin = args.issuer_origin
    if origin is None:
        from gateway.config import load_config

        origin = load_config(args.config).public_url
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise CommandError(
            f"--issuer-origin: expected the gateway's http(s) URL, such as http://127.0.0.1:8080, not {origin!r}"
        )
    if not 60 <= args.lifetime <= 86400:
        raise CommandError("--lifetime: expected 60 to 86400 seconds")
    try:
        provider = ServiceClientTokenProvider(key, origin, lifetime=args.lifetime)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    token = provider.get_token()
    output(args, {"access_token": token, "token_type": "Bearer", "expires_in": args.lifetime}, token)
    return 0
