"""`gateway clients|keys|secrets`: service clients and their credentials, on the store directly
(the admin API does the same over HTTP). Access keys and secrets are printed once, never stored."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import manage, vault
from gateway.cli.common import (
    ACTOR,
    CommandError,
    command,
    group,
    output,
    output_done,
    output_list,
)
from gateway.config import Config
from gateway.errors import GatewayError
from gateway.identity import service
from gateway.models import Client
from gateway.store import Missing, Store


def register(commands: Any) -> None:
    _clients(commands)
    _keys(commands)
    _secrets(commands)


# --- clients -------------------------------------------------------------------------------------


def _clients(commands: Any) -> None:
    sub = group(commands, "clients", "manage service clients")
    create = command(sub, "create", "create a service client", _client_create)
    create.add_argument("--name", required=True)
    create.add_argument("--description")
    create.add_argument("--tenant")
    create.add_argument("--scope", action="append", default=[], help="an allowed scope (repeat)")
    create.add_argument("--audience", action="append", default=[], help="an allowed audience (repeat)")
    create.add_argument("--with-key", action="store_true", help="also create an access key and print it once")
    command(sub, "list", "list service clients", _client_list).add_argument("--tenant")
    command(sub, "delete", "delete a service client and its keys", _client_delete).add_argument("client_id")
    manage.client_commands(sub, command)


def _client_create(args: argparse.Namespace, store: Store, config: Config) -> int:
    body = {
        "name": args.name,
        "description": args.description,
        "tenant": args.tenant,
        "scopes": args.scope,
        "audiences": args.audience,
    }
    client = store.create_client(service.new_client(body, None), ACTOR)
    data = service.render_client(client)
    human = f"created client {client.client_id} ({client.name})"
    if args.with_key:
        key, access_key = service.new_access_key(client.client_id, config.account_id)
        store.create_access_key(key, ACTOR)
        data.update(keyId=key.key_id, accessKey=access_key)
        human += f"\naccess key {key.key_id}, shown this once:\n\n  {access_key}\n"
    output(args, data, human)
    return 0


def _client_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    clients = []
    after = ""
    while True:
        page = store.list_clients(tenant=args.tenant, after=after, limit=500)
        clients.extend(page)
        if len(page) < 500:
            break
        after = page[-1].client_id
    output_list(args, "clients", clients, service.render_client, _client_line, "no clients")
    return 0


def _client_line(client: Client) -> str:
    disabled = "  (disabled)" if client.disabled else ""
    tenant = f"  tenant={client.tenant}" if client.tenant else ""
    return f"{client.client_id}  {client.name}{disabled}{tenant}"


def _client_delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.delete_client(args.client_id, ACTOR)
    output_done(args, "deleted", args.client_id, "client")
    return 0


# --- keys ----------------------------------------------------------------------------------------


def _keys(commands: Any) -> None:
    sub = group(commands, "keys", "manage access keys")
    create = command(sub, "create", "create an access key (printed once)", _key_create)
    create.add_argument("--client", required=True)
    manage.add_expiry(create)
    command(sub, "list", "list a client's access keys (expired ones marked)", _key_list).add_argument(
        "--client", required=True
    )
    revoke = command(sub, "revoke", "revoke an access key", _key_revoke)
    revoke.add_argument("--client", required=True)
    revoke.add_argument("key_id")
    command(
        sub, "rotate-signing", "rotate the gateway's token signing key now", _rotate_signing
    ).add_argument(
        "--now",
        action="store_true",
        help="rotate even if the next key was published less than jwks_max_age ago",
    )
    vault.register_keys(sub, command)


def _secrets(commands: Any) -> None:
    sub = group(commands, "secrets", "manage client secrets (for client_secret_basic/post)")
    create = command(sub, "create", "create a client secret (printed once)", _secret_create)
    create.add_argument("--client", required=True)
    manage.add_expiry(create)
    manage.secret_commands(sub, command)
    revoke = command(sub, "revoke", "revoke a client secret", _secret_revoke)
    revoke.add_argument("--client", required=True)
    revoke.add_argument("secret_id")


def _secret_create(args: argparse.Namespace, store: Store, config: Config) -> int:
    secret, shown_once = service.new_client_secret(args.client, manage.expiry_of(args))
    store.create_client_secret(secret, ACTOR)
    output(
        args,
        service.render_secret(secret, shown_once),
        f"client secret {secret.secret_id} for {secret.client_id}, shown this once:\n\n  {shown_once}\n",
    )
    return 0


def _secret_revoke(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.revoke_client_secret(args.client, args.secret_id, ACTOR)
    output_done(args, "revoked", args.secret_id)
    return 0


def _rotate_signing(args: argparse.Namespace, store: Store, config: Config) -> int:
    from gateway.crypto import Sealer, load_master_key
    from gateway.identity.rotation import rotate_now

    sealer = Sealer(load_master_key(config.master_key_file))
    try:
        rotate_now(store, sealer, config, ACTOR, args.now, "pass --now to rotate anyway")
    except GatewayError as exc:
        raise CommandError(exc.description) from None
    keys = store.signing_keys()
    current = next(k.kid for k in keys if k.state == "current")
    output(
        args,
        {"current": current, "keys": [{"kid": k.kid, "alg": k.alg, "state": k.state} for k in keys]},
        f"rotated: {current} signs from now on (every replica within a second); retired keys stay published "
        "until their tokens expire",
    )
    return 0


def _key_create(args: argparse.Namespace, store: Store, config: Config) -> int:
    key, access_key = service.new_access_key(args.client, config.account_id, manage.expiry_of(args))
    store.create_access_key(key, ACTOR)
    output(
        args,
        {
            "clientId": key.client_id,
            "keyId": key.key_id,
            "accessKey": access_key,
            "expiresAt": key.expires_at,
        },
        f"access key {key.key_id} for {key.client_id}, shown this once:\n\n  {access_key}\n",
    )
    return 0


def _key_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    if store.get_client(args.client) is None:
        raise Missing(args.client)
    keys = store.list_access_keys(args.client, with_expired=True)
    output_list(args, "accessKeys", keys, service.render_key, manage.describe_key, "no keys")
    return 0


def _key_revoke(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.revoke_access_key(args.client, args.key_id, ACTOR)
    output_done(args, "revoked", args.key_id)
    return 0
