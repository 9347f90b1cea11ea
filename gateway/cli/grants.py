"""`gateway roles|records`: what clients may do, on the store directly (as the admin API does)."""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli.common import (
    ACTOR,
    command,
    group,
    output,
)
from gateway.config import Config
from gateway.errors import InvalidRequest
from gateway.identity import service
from gateway.store import Store


def register(commands: Any) -> None:
    _roles(commands)
    _records(commands)


# --- roles and records ---------------------------------------------------------------------------


def _roles(commands: Any) -> None:
    sub = group(commands, "roles", "manage roles")
    put = command(sub, "put", "create or replace a role", _role_put)
    put.add_argument("role_id")
    put.add_argument(
        "--permission", action="append", required=True, help="an action such as documents:read (repeat)"
    )
    put.add_argument("--grant", action="store_true", help="holders may grant these permissions to others")
    command(sub, "list", "list roles", _role_list)
    command(sub, "delete", "delete a role", _role_delete).add_argument("role_id")


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
    sub = group(commands, "records", "manage access records (grants)")
    put = command(
        sub, "put", "create or replace an access record: USERS get ROLES on RESOURCES", _record_put
    )
    put.add_argument("--record-id", help="default: a generated id")
    put.add_argument("--user", action="append", required=True, help="a client id (repeat)")
    put.add_argument("--role", action="append", required=True, help="a role id (repeat)")
    put.add_argument(
        "--resource", action="append", required=True, help="a resource URI such as /users/1 (repeat)"
    )
    put.add_argument("--name")
    command(sub, "list", "list access records", _record_list)
    command(sub, "delete", "delete an access record", _record_delete).add_argument("record_id")


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
