"""`gateway init` and `gateway migrate`: setting up the store, the master key, the signing key and
the first admin client."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import (
    CommandError,
    add_common,
    config_of,
    output,
)
from gateway.identity import service
from gateway.store import StoreError


def register(commands: Any) -> None:
    init = commands.add_parser(
        "init",
        help="initialise the store, master key, signing key and first admin client",
        description="Create the store's schema, the master key file (when absent and GATEWAY_MASTER_KEY is "
        "unset), the gateway's signing key, the gateway-admin role and a first admin client whose access key "
        "is printed once. Exits 1 on an initialised store (0 with --if-needed). Safe to run on several "
        "replicas at once.",
    )
    add_common(init)
    init.add_argument("--if-needed", action="store_true", help="exit 0 when the store is initialised already")
    init.add_argument("--name", default="gateway-admin", help="name of the first admin client")
    init.set_defaults(handler=run_init)

    migrate = commands.add_parser(
        "migrate",
        help="apply pending store schema migrations",
        description="Apply pending store schema migrations (serve does it at start too).",
    )
    add_common(migrate)
    migrate.set_defaults(handler=run_migrate)


# --- init / migrate ------------------------------------------------------------------------------


def run_init(args: argparse.Namespace) -> int:
    import os

    from gateway.crypto import Sealer, create_master_key_file, load_master_key
    from gateway.identity.signing import new_signing_key
    from gateway.store import open_store

    config = config_of(args)
    try:
        store = open_store(config.store)
    except StoreError as exc:
        raise CommandError(f"store: {exc}") from None
    try:
        if store.get_meta("initialized") is not None:
            return _already(args)
        created_key_file = False
        if not os.environ.get("GATEWAY_MASTER_KEY") and config.master_key_file is not None:
            try:
                create_master_key_file(config.master_key_file)
                created_key_file = True
            except FileExistsError:
                pass  # an existing key (or one a racing replica just wrote) is used as it is
        sealer = Sealer(load_master_key(config.master_key_file))
        algorithm = config.tokens.algorithm
        signing_keys = (
            new_signing_key(sealer, algorithm, "current"),
            new_signing_key(sealer, algorithm, "next"),
        )
        done = service.initialize(store, config.account_id, args.name, signing_keys)
        if done is None:
            return _already(args)
        client, access_key = done
        data = {
            "clientId": client.client_id,
            "accessKey": access_key,
            "accountId": config.account_id,
            "masterKeyFile": str(config.master_key_file) if created_key_file else None,
        }
        output(
            args,
            data,
            f"Initialised {config.store.path or 'the PostgreSQL store'} for account {config.account_id}.\n"
            + (
                f"Master key written to {config.master_key_file} (keep it safe; back it up).\n"
                if created_key_file
                else ""
            )
            + f"First admin client: {client.client_id}\n"
            f"Its access key, shown this once:\n\n  {access_key}\n",
        )
        return 0
    finally:
        store.close()


def _already(args: argparse.Namespace) -> int:
    if args.if_needed:
        output(
            args,
            {"initialized": False, "reason": "already initialised"},
            "The store is initialised already; nothing to do.",
        )
        return 0
    raise CommandError(
        "the store is initialised already; nothing was changed (use --if-needed to make this a success)"
    )


def run_migrate(args: argparse.Namespace) -> int:
    from gateway.store import current_version, migrate
    from gateway.store.backend import open_backend

    config = config_of(args)
    try:
        backend = open_backend(config.store)
        try:
            applied = migrate(backend)
            version = current_version(backend)
        finally:
            backend.close()
    except StoreError as exc:
        raise CommandError(f"store: {exc}") from None
    output(
        args,
        {"applied": applied, "version": version},
        f"schema version {version}; applied {applied or 'nothing'}",
    )
    return 0
