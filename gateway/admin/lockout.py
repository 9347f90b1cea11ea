"""Refuse the admin API change that would leave the gateway without an administrator
(issue 9, defect 8).

An administrator is an enabled client with at least one active credential (access key, client
secret or registered public key) that holds `gateway:*` on `/gateway` through its records and
roles. Deleting or disabling the last one, revoking its last credential, emptying or deleting
its role, or taking it out of its record would lock everyone out of the admin API; such a change
is a 409 that says why. The CLI, run on the store's machine, is not held back: it is how an
operator recovers (docs/operations.md, "Recovering an administrator").

Only grants on `/gateway` itself can confer `gateway:*` there (`*` actions and grants on `/`
never confer `gateway:` permissions), so only records naming `/gateway` are looked at. The check
runs before the write, outside its transaction: two concurrent changes could still together
remove the last two administrators; admin changes are rare and made by people, so this guards
the mistake, not a race.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.errors import ConflictError
from gateway.identity.grants import compile_grants, resource_segments
from gateway.models import Client, Record, Role
from gateway.store import Store

_PERMISSION, _RESOURCE = "gateway:*", "/gateway"


@dataclass(frozen=True)
class Proposed:
    """A change about to be written: replaced or deleted (None) roles, records and clients, and
    revoked credential ids."""

    roles: dict[str, Role | None] = field(default_factory=dict)
    records: dict[str, Record | None] = field(default_factory=dict)
    clients: dict[str, Client | None] = field(default_factory=dict)
    revoked: frozenset[str] = frozenset()


def _all_records(store: Store) -> Iterator[Record]:
    after = ""
    while True:
        page = store.list_records(after, 500)
        yield from page
        if len(page) < 500:
            return
        after = page[-1].record_id


def _names_gateway(record: Record) -> bool:
    return any(resource_segments(r) == ("gateway",) for s in record.statements for r in s.resources)


class Administrators:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _admins(self, records: list[Record], change: Proposed) -> set[str]:
        role_ids = {role for rec in records for st in rec.statements for role in st.roles}
        roles = self.store.get_roles(role_ids)
        for role_id, role in change.roles.items():
            if role is None:
                roles.pop(role_id, None)
            elif role_id in role_ids:
                roles[role_id] = role
        admins: set[str] = set()
        for user in sorted({u for rec in records for u in rec.users}):
            client = change.clients[user] if user in change.clients else self.store.get_client(user)
            if client is None or client.disabled or not self._has_credential(user, change.revoked):
                continue
            mine = [rec for rec in records if user in rec.users]
            if compile_grants(mine, roles).find(_PERMISSION, _RESOURCE) is not None:
                admins.add(user)
        return admins

    def _has_credential(self, client_id: str, revoked: frozenset[str]) -> bool:
        ids = [k.key_id for k in self.store.list_access_keys(client_id)]
        ids += [s.secret_id for s in self.store.list_client_secrets(client_id)]
        ids += [k.key_id for k in self.store.list_public_keys(client_id)]
        return any(i not in revoked for i in ids)

    def check(self, change: Proposed) -> None:
        """Raise ConflictError when `change` would take the last administrator away (blocking:
        run in a thread)."""
        before = [r for r in _all_records(self.store) if _names_gateway(r)]
        touched_roles = {role for rec in before for st in rec.statements for role in st.roles}
        users = {u for rec in before for u in rec.users}
        if not (
            any(r in touched_roles for r in change.roles)
            or change.records
            or any(c in users for c in change.clients)
            or change.revoked
        ):
            return  # nothing an administrator depends on
        after = [r for r in before if r.record_id not in change.records]
        after += [r for r in change.records.values() if r is not None and _names_gateway(r)]
        admins = self._admins(before, Proposed())
        if admins and not self._admins(after, change):
            raise ConflictError(
                "this change would leave no administrator (an enabled client with an active "
                "credential holding gateway:* on /gateway): make another client an administrator "
                "first; to recover one, see `Recovering an administrator` in docs/operations.md"
            )
