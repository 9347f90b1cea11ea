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
from pathlib import Path

from gateway import __version__
from gateway.errors import ConfigError

DEFAULT_CONFIG = "config.yaml"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("GATEWAY_CONFIG", DEFAULT_CONFIG),
        help="config file (default: $GATEWAY_CONFIG or ./config.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gateway",
        description="Machine-to-machine authentication gateway.",
    )
    parser.add_argument("--version", action="version", version=f"gateway {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser(
        "serve",
        help="run the gateway (proxy and admin listeners)",
        description="Run the gateway: the proxy listener and the admin listener.",
    )
    _common(serve)
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (overrides `workers`)")
    serve.set_defaults(handler=cmd_serve)

    policy = commands.add_parser(
        "policy", help="check route policy files", description="Work with route policy files."
    )
    policy_commands = policy.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    check = policy_commands.add_parser(
        "check",
        help="validate policy files and folders",
        description="Validate policy files and folders; print every problem with file, route and "
        "field; exit 1 if there is any. Needs no config file.",
    )
    _common(check)
    check.add_argument("files", nargs="+", metavar="FILE", help="policy files or folders")
    check.set_defaults(handler=cmd_policy_check)
    return parser


def cmd_serve(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gateway.config import load_config

    config = load_config(args.config)
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError("--workers: expected a whole number of at least 1")
        config = replace(config, workers=args.workers)
    from gateway.policy import load_policy

    load_policy(config.policies, config.public_base_path)  # refuse to start on an invalid policy
    from gateway.server import run

    run(config)
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from gateway.policy import PolicyError, load_policy

    base_path = ""
    if args.config != DEFAULT_CONFIG or Path(args.config).exists():
        from gateway.config import load_config

        base_path = load_config(args.config).public_base_path
    try:
        policy = load_policy([Path(f) for f in args.files], base_path)
    except PolicyError as exc:
        if args.json:
            print(json.dumps({"ok": False, "problems": exc.problems}, indent=2))
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    summary = {
        "ok": True,
        "files": [str(f) for f in policy.files],
        "routes": len(policy.routes),
        "upstreams": len(policy.upstreams),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"ok: {summary['routes']} route(s), {summary['upstreams']} upstream(s) in {len(policy.files)} file(s)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except ConfigError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
