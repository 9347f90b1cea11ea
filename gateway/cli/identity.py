"""`gateway init`, `gateway migrate`, and local administration of clients, keys, roles and
records (the admin API does the same over HTTP). Access keys are printed once, never stored."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from gateway.cli import manage, vault
from gateway.cli.common import (
    ACTOR,
    CommandError,
    add_common,
    config_of,
    open_initialized_store,
    output,
    store_errors,
)
from gateway.config import Config
from gateway.errors import GatewayError, InvalidRequest
from gateway.identity import service
from gateway.store import Conflict, Missing, Store, StoreError


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

    _clients(commands)
    _keys(commands)
    _secrets(commands)
    _roles(commands)
    _records(commands)
    vault.register(commands, _group, _command)
    manage.register(commands, _group, _command)


def _group(commands: Any, name: str, help: str) -> Any:
    parser = commands.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def _command(
    sub: Any, name: str, help: str, handler: Callable[[argparse.Namespace, Store, Config], int]
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=help)
    add_common(parser)
    parser.set_defaults(handler=lambda args: _with_store(args, handler))
    return parser


def _with_store(args: argparse.Namespace, handler: Callable[[argparse.Namespace, Store, Config], int]) -> int:
    config = config_of(args)
    store = open_initialized_store(config)
    try:
        return handler(args, store, config)
    except (Missing, Conflict, StoreError, GatewayError) as exc:
        raise store_errors(exc) from None
    finally:
        store.close()


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


# --- clients -------------------------------------------------------------------------------------


def _clients(commands: Any) -> None:
    sub = _group(commands, "clients", "manage service clients")
    create = _command(sub, "create", "create a service client", _client_create)
    create.add_argument("--name", required=True)
    create.add_argument("--description")
    create.add_argument("--tenant")
    create.add_argument("--scope", action="append", default=[], help="an allowed scope (repeat)")
    create.add_argument("--audience", action="append", default=[], help="an allowed audience (repeat)")
    create.add_argument("--with-key", action="store_true", help="also create an access key and print it once")
    _command(sub, "list", "list service clients", _client_list).add_argument("--tenant")
    _command(sub, "delete", "delete a service client and its keys", _client_delete).add_argument("client_id")
    manage.client_commands(sub, _command)


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
    output(
        args,
        {"clients": [service.render_client(c) for c in clients]},
        "\n".join(
            f"{c.client_id}  {c.name}{'  (disabled)' if c.disabled else ''}{'  tenant=' + c.tenant if c.tenant else ''}"
            for c in clients
        )
        or "no clients",
    )
    return 0


def _client_delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.delete_client(args.client_id, ACTOR)
    output(args, {"deleted": args.client_id}, f"deleted client {args.client_id}")
    return 0


# --- keys ----------------------------------------------------------------------------------------


def _keys(commands: Any) -> None:
    sub = _group(commands, "keys", "manage access keys")
    create = _command(sub, "create", "create an access key (printed once)", _key_create)
    create.add_argument("--client", required=True)
    manage.add_expiry(create)
    _command(sub, "list", "list a client's access keys (expired ones marked)", _key_list).add_argument(
        "--client", required=True
    )
    revoke = _command(sub, "revoke", "revoke an access key", _key_revoke)
    revoke.add_argument("--client", required=True)
    revoke.add_argument("key_id")
    _command(
        sub, "rotate-signing", "rotate the gateway's token signing key now", _rotate_signing
    ).add_argument(
        "--now",
        action="store_true",
        help="rotate even if the next key was published less than jwks_max_age ago",
    )
    vault.register_keys(sub, _command)


def _secrets(commands: Any) -> None:
    sub = _group(commands, "secrets", "manage client secrets (for client_secret_basic/post)")
    create = _command(sub, "create", "create a client secret (printed once)", _secret_create)
    create.add_argument("--client", required=True)
    manage.add_expiry(create)
    manage.secret_commands(sub, _command)
    revoke = _command(sub, "revoke", "revoke a client secret", _secret_revoke)
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
    output(args, {"revoked": args.secret_id}, f"revoked {args.secret_id}")
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
    output(
        args,
        {"accessKeys": [service.render_key(k) for k in keys]},
        "\n".join(manage.describe_key(k) for k in keys) or "no keys",
    )
    return 0


def _key_revoke(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.revoke_access_key(args.client, args.key_id, ACTOR)
    output(args, {"revoked": args.key_id}, f"revoked {args.key_id}")
    return 0


# --- roles and records ---------------------------------------------------------------------------


def _roles(commands: Any) -> None:
    sub = _group(commands, "roles", "manage roles")
    put = _command(sub, "put", "create or replace a role", _role_put)
    put.add_argument("role_id")
    put.add_argument(
        "--permission", action="append", required=True, help="an action such as documents:read (repeat)"
    )
    put.add_argument("--grant", action="store_true", help="holders may grant these permissions to others")
    _command(sub, "list", "list roles", _role_list)
    _command(sub, "delete", "delete a role", _role_delete).add_argument("role_id")


def _role_put(args: argparse.Namespace, store: Store, config: Config) -> int:
    body = {
        "permissions": [
            {"action": a, "allow": True, "grant": args.grant, "delegate": False} for a in args.permission
        ]
    }
    role = store.put_role(service.role_from(body, args.role_id), ACTOR)
    output(
        args,
        service.render_role(role),
        f"role {role.role_id}: {', '.join(p.action for p in role.permissions)}",
    )
    return 0


def _role_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    roles = store.list_roles(limit=10_000)
    output(
        args,
        {"roles": [service.render_role(r) for r in roles]},
        "\n".join(f"{r.role_id}  {', '.join(p.action for p in r.permissions)}" for r in roles) or "no roles",
    )
    return 0


def _role_delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.delete_role(args.role_id, ACTOR)
    output(args, {"deleted": args.role_id}, f"deleted role {args.role_id}")
    return 0


def _records(commands: Any) -> None:
    sub = _group(commands, "records", "manage access records (grants)")
    put = _command(
        sub, "put", "create or replace an access record: USERS get ROLES on RESOURCES", _record_put
    )
    put.add_argument("--record-id", help="default: a generated id")
    put.add_argument("--user", action="append", required=True, help="a client id (repeat)")
    put.add_argument("--role", action="append", required=True, help="a role id (repeat)")
    put.add_argument(
        "--resource", action="append", required=True, help="a resource URI such as /users/1 (repeat)"
    )
    put.add_argument("--name")
    _command(sub, "list", "list access records", _record_list)
    _command(sub, "delete", "delete an access record", _record_delete).add_argument("record_id")


def _record_put(args: argparse.Namespace, store: Store, config: Config) -> int:
    body = {
        "name": args.name,
        "users": [{"userId": u} for u in args.user],
        "statements": [{"roles": args.role, "resources": [{"resourceUri": r} for r in args.resource]}],
    }
    record = service.record_from(body, args.record_id, ACTOR)
    # The admin API refuses a role that does not exist (admin.actions.may_confer_record); so does this.
    known = store.get_roles(args.role)
    missing = [r for r in args.role if r not in known]
    if missing:
        raise InvalidRequest(f"statements[0].roles: no role {missing[0]}")
    record = store.put_record(record, ACTOR)
    output(
        args,
        service.render_record(record),
        f"record {record.record_id}: {', '.join(record.users)} get {', '.join(args.role)} on {', '.join(args.resource)}",
    )
    return 0


def _record_list(args: argparse.Namespace, store: Store, config: Config) -> int:
    records = store.list_records(limit=10_000)
    output(
        args,
        {"records": [service.render_record(r) for r in records]},
        "\n".join(f"{r.record_id}  users={','.join(r.users)}" for r in records) or "no records",
    )
    return 0


def _record_delete(args: argparse.Namespace, store: Store, config: Config) -> int:
    store.delete_record(args.record_id, ACTOR)
    output(args, {"deleted": args.record_id}, f"deleted record {args.record_id}")
    return 0
