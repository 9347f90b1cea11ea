"""The `gateway` command (contract §10). Errors go to stderr with a non-zero exit status; every
command takes `--config` and `--json`.

Modules that import prometheus_client are imported inside the commands that need them, after
`serve` has set up the multi-process metrics directory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import clients, completion, grants, identities, manage, policy, serve, setup, token, vault
from gateway.cli.common import CommandError, command, group
from gateway.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Machine-to-machine authentication gateway.")
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (serve, setup, clients, grants):
        module.register(commands)
    vault.register(commands, group, command)
    manage.register(commands, group, command)
    for module in (identities, policy, token, completion):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below
        return code
    except (ConfigError, CommandError) as exc:
        status = 2 if isinstance(exc, ConfigError) else 1
        if getattr(args, "json", False):
            error = "config_error" if isinstance(exc, ConfigError) else exc.code
            print(json.dumps({"error": error, "message": str(exc)}))
        print(f"gateway: {exc}", file=sys.stderr)
        return status
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `gateway clients list --json | head -1`: the reader left. No traceback; and Python
        # must not try to flush stdout again at exit (the docs' recipe for SIGPIPE).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by it
