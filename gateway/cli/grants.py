"""`gateway roles|records`: what clients may do, on the store directly (as the admin API does)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from gateway.cli.common import ACTOR, Handler, command, group, output, output_done, output_list
from gateway.config import Config
from gateway.errors import InvalidRequest
from gateway.identity import service
from gateway.models import Role
from gateway.store import Store

T = TypeVar("T")


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
    list_, delete = _list_and_delete(
        "role",
        lambda store: store.list_roles(limit=10_000),
        service.render_role,
        lambda r: f"{r.role_id}  {_actions(r)}",
        lambda store, role_id: store.delete_role(role_id, ACTOR),
    )
    command(sub, "list", "list roles", list_)
    command(sub, "delete", "delete a role", delete).add_argument("role_id")


def _role_put(args: argparse.Namespace, store: Store, config: Config) -> int:
    body = {
        "permissions": [
            {"action": a, "allow": True, "grant": args.grant, "delegate": False} for a in args.permission
        ]
    }
    role = store.put_role(service.role_from(body, args.role_id), ACTOR)
    output(args, service.render_role(role), f"role {role.role_id}: {_actions(role)}")
    return 0


def _actions(role: Role) -> str:
    return ", ".join(p.action for p in role.permissions)


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
    list_, delete = _list_and_delete(
        "record",
        lambda store: store.list_records(limit=10_000),
        service.render_record,
        lambda r: f"{r.record_id}  users={','.join(r.users)}",
        lambda store, record_id: store.delete_record(record_id, ACTOR),
    )
    command(sub, "list", "list access records", list_)
    command(sub, "delete", "delete an access record", delete).add_argument("record_id")


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


def _list_and_delete(
    noun: str,
    fetch: Callable[[Store], Sequence[T]],
    render: Callable[[T], Any],
    line: Callable[[T], str],
    delete: Callable[[Store, str], object],
) -> tuple[Handler, Handler]:
    """The `list` and `delete <noun>_id` handlers, which roles and records share: `noun` names
    the list's JSON key (its plural), the id argument and the human output."""
    plural, id_arg = f"{noun}s", f"{noun}_id"

    def list_(args: argparse.Namespace, store: Store, config: Config) -> int:
        output_list(args, plural, fetch(store), render, line, f"no {plural}")
        return 0

    def delete_(args: argparse.Namespace, store: Store, config: Config) -> int:
        object_id = getattr(args, id_arg)
        delete(store, object_id)
        output_done(args, "deleted", object_id, noun)
        return 0

    return list_, delete_
