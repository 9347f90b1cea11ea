"""`gateway serve`."""

from __future__ import annotations

import argparse
import shutil
from dataclasses import replace
from typing import Any

from gateway.cli.common import add_common, config_of
from gateway.errors import ConfigError


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the gateway (proxy and admin listeners)",
        description="Run the gateway: the proxy listener and the admin listener.",
    )
    add_common(serve)
    serve.add_argument("--workers", type=int, metavar="N", help="worker processes (overrides `workers`)")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    config = config_of(args)  # gateway.config does not import prometheus_client
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError("--workers: expected a whole number of at least 1")
        config = replace(config, workers=args.workers)
    from gateway.server import prepare_metrics_dir

    # Several workers report through files (prometheus_client's multi-process mode); one worker
    # keeps its metrics in memory, which costs a fifth of the per-request metric overhead.
    metrics_dir = prepare_metrics_dir() if config.workers > 1 else None
    from gateway import group

    group_dir = group.prepare() if config.workers > 1 else None  # counters and readiness shared
    try:
        from gateway.policy import load_policy
        from gateway.runtime import open_identity

        policy = load_policy(config.policies, config.public_base_path)  # refuse an invalid policy
        open_identity(config).store.close()  # refuse an uninitialised store or an unreadable key
        from gateway.server import run as serve

        serve(config, policy)
        return 0
    finally:
        for made in (metrics_dir, group_dir):
            if made:
                shutil.rmtree(made, ignore_errors=True)
