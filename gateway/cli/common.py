"""What every command shares: --config and --json, loading the config and the store, output."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gateway.config import Config, load_config
from gateway.errors import GatewayError
from gateway.store import Conflict, Missing, Store, StoreError

DEFAULT_CONFIG = "config.yaml"
ACTOR = "cli"
T = TypeVar("T")


class CommandError(Exception):
    """A command failed for a reason worth one line on stderr (with --json, a JSON object on
    stdout: `{"error": code, "message": ...}`)."""

    def __init__(self, message: str, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


def add_common(parser: argparse.ArgumentParser, config_default: str | None = None) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=os.environ.get("GATEWAY_CONFIG", DEFAULT_CONFIG)
        if config_default is None
        else config_default,
        help="config file (default: $GATEWAY_CONFIG or ./config.yaml)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def config_of(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def output(args: argparse.Namespace, data: Any, human: str) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(human)


def output_list(
    args: argparse.Namespace,
    plural: str,
    items: Sequence[T],
    render: Callable[[T], Any],
    line: Callable[[T], str],
    empty: str,
) -> None:
    """A list command's output: `{plural: [render(item), ...]}` with --json, else `line(item)`
    one a line (`empty` when there are none)."""
    output(args, {plural: [render(i) for i in items]}, "\n".join(line(i) for i in items) or empty)


def output_done(args: argparse.Namespace, verb: str, object_id: str, noun: str = "") -> None:
    """A delete or revoke command's output: `{"deleted": id}` with --json, else `deleted role r1`."""
    output(args, {verb: object_id}, f"{verb} {noun} {object_id}" if noun else f"{verb} {object_id}")


def open_initialized_store(config: Config) -> Store:
    from gateway.runtime import check_store

    return check_store(config)


def store_errors(exc: Exception) -> CommandError:
    """Translate store and validation errors into one-line messages."""
    if isinstance(exc, Missing):
        return CommandError(f"not found: {exc}", "not_found")
    if isinstance(exc, Conflict):
        return CommandError(str(exc), "conflict")
    if isinstance(exc, GatewayError):
        return CommandError(exc.description, exc.error)
    if isinstance(exc, StoreError):
        return CommandError(f"store: {exc}", "store_unavailable")
    raise exc


Handler = Callable[[argparse.Namespace, Store, Config], int]


def group(commands: Any, name: str, help: str) -> Any:
    """A command group (`gateway clients …`): its subcommands' parser."""
    parser = commands.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def command(sub: Any, name: str, help: str, handler: Handler) -> argparse.ArgumentParser:
    """A subcommand run on the store: `handler(args, store, config)`, store errors as one line."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    add_common(parser)
    parser.set_defaults(handler=lambda args: with_store(args, handler))
    return parser


def with_store(args: argparse.Namespace, handler: Handler) -> int:
    config = config_of(args)
    store = open_initialized_store(config)
    try:
        return handler(args, store, config)
    except (Missing, Conflict, StoreError, GatewayError) as exc:
        raise store_errors(exc) from None
    finally:
        store.close()
