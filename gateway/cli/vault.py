"""`gateway connections list|create|delete` (the vault's connections, as the admin API manages
them) and the master key commands `gateway keys create-master FILE` and `gateway keys
rotate-master`. A connection's client secret never goes on the command line (other users can read
a process's arguments): it comes from stdin or from an environment variable named in the
connection."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from gateway.cli.common import ACTOR, CommandError, output, output_list
from gateway.config import Config
from gateway.crypto import create_master_key_file, load_sealer
from gateway.store import Store
from gateway.vault_models import CONNECTION_SECRET, binding, connection_from, render_connection

Command = Callable[
    [Any, str, str, Callable[[argparse.Namespace, Store, Config], int]], argparse.ArgumentParser
]


def register(commands: Any, group: Callable[[Any, str, str], Any], command: Command) -> None:
    sub = group(commands, "connections", "manage the credentials vault's connections (OAuth providers)")
    command(sub, "list", "list the connections in the store", _list)
    create = command(sub, "create", "create or replace a connection", _create)
    create.add_argument("connection_id")
    create.add_argument("--authorization-url", required=True)
    create.add_argument("--token-url", required=True)
    create.add_argument("--revocation-url")
    create.add_argument("--client-id", required=True)
    secret = create.add_mutually_exclusive_group()
    secret.add_argument(
        "--client-secret-env", metavar="NAME", help="read the secret from this variable at use"
    )
    secret.add_argument(
        "--client-secret-stdin", action="store_true", help="read the secret from stdin (sealed)"
    )
    create.add_argument("--auth-method", default="client_secret_basic", dest="method")
    create.add_argument("--scope", action="append", default=[], dest="scopes")
    create.add_argument("--allowed-redirect", action="append", default=[], dest="redirects")
    create.add_argument("--resource-template")
    create.add_argument("--name")
    delete = command(sub, "delete", "delete a connection and every credential stored for it", _delete)
    delete.add_argument("connection_id")


def register_keys(sub: Any, command: Command) -> None:
    """The master key's subcommands, in the `keys` group."""
    create = sub.add_parser(
        "create-master",
        help="write a new random master key file (mode 0600)",
        description="Write a new random master key to FILE (refuses to overwrite). Then make it master_key_file, "
        "move the old one to previous_master_keys, restart, and run `gateway keys rotate-master`.",
    )
    create.add_argument("file", type=Path)
    create.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    create.add_argument("--config", help=argparse.SUPPRESS)
    create.set_defaults(handler=_create_master)
    command(
        sub,
        "rotate-master",
        "re-seal everything under the current master key (while the gateway serves; resumable)",
        _rotate_master,
    )


def _create_master(args: argparse.Namespace) -> int:
    try:
        key = create_master_key_file(args.file)
    except FileExistsError:
        raise CommandError(f"{args.file} exists already; nothing was written") from None
    output(
        args, {"file": str(args.file), "masterKeyId": key.kid}, f"master key {key.kid} written to {args.file}"
    )
    return 0


def _rotate_master(args: argparse.Namespace, store: Store, config: Config) -> int:
    from gateway.vault.rotation import rotate_master

    report = rotate_master(store, load_sealer(config.master_key_file, config.previous_master_keys), ACTOR)
    output(
        args,
        report.render(),
        f"master key {report.master_key_id}: re-sealed {sum(report.resealed.values())} values "
        f"({', '.join(f'{k} {v}' for k, v in report.resealed.items()) or 'none'}); "
        f"{report.already_current} were current already; {report.remaining} remain"
        + "".join(f"\ncannot open: {u}" for u in report.unreadable),
    )
    if report.unreadable or report.remaining:
        raise CommandError(
            f"{len(report.unreadable)} values cannot be opened with the configured keys and {report.remaining} "
            "remain under an old key: keep previous_master_keys and run again"
        )
    return 0


def _list(args: argparse.Namespace, store: Store, config: Config) -> int:
    connections = [*config.vault.connections, *store.list_connections(limit=10_000)]
    output_list(
        args,
        "connections",
        connections,
        render_connection,
        lambda c: f"{c.connection_id}  {c.token_url}  ({c.source})",
        "no connections",
    )
    return 0


def _create(args: argparse.Namespace, store: Store, config: Config) -> int:
    body: dict[str, Any] = {
        "authorizationUrl": args.authorization_url,
        "tokenUrl": args.token_url,
        "revocationUrl": args.revocation_url,
        "clientId": args.client_id,
        "clientSecretEnv": args.client_secret_env,
        "tokenEndpointAuthMethod": args.method,
        "scopes": args.scopes,
        "allowedRedirects": args.redirects,
        "resourceTemplate": args.resource_template,
        "name": args.name,
    }
    secret = sys.stdin.readline().rstrip("\r\n") if args.client_secret_stdin else None
    if secret is not None:
        body["clientSecret"] = secret
    if any(c.connection_id == args.connection_id for c in config.vault.connections):
        raise CommandError(f"connection {args.connection_id} is defined in the config file; change it there")
    existing = store.get_connection(args.connection_id)
    # The operator may name any environment variable (the API only GATEWAY_CONNECTION_*).
    connection, plain = connection_from(body, args.connection_id, existing=existing, any_env=True)
    if plain is not None:
        sealer = load_sealer(config.master_key_file, config.previous_master_keys)
        connection = replace(
            connection,
            sealed_secret=sealer.seal(plain.encode(), binding(CONNECTION_SECRET, connection.connection_id)),
        )
    connection = store.put_connection(connection, ACTOR, create_only=False)
    output(args, render_connection(connection), f"connection {connection.connection_id} saved")
    return 0


def _delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    dropped = store.delete_connection(args.connection_id, ACTOR)
    output(
        args,
        {"deleted": args.connection_id, "credentials": dropped},
        f"deleted {args.connection_id} and {dropped} stored credentials",
    )
    return 0
