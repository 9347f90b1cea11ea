"""What an admin caller may do, and doing it: the one service layer behind the admin API and the
web console (contract §7, §12).

Every operation takes the authenticated `Caller` and makes the permission checks itself
(`gateway:<collection>:<action>`, a tenant admin's fence, "confer only what you hold"), so the two
front ends cannot drift apart: the API handlers parse JSON and render JSON around these calls, the
console parses forms and renders HTML around the same calls. Blocking store calls run in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.admin.auth import Caller, require
from gateway.admin.lockout import Administrators, Proposed
from gateway.errors import AccessDenied, ConflictError, InvalidRequest, NotFound
from gateway.identity import service
from gateway.identity.directory import Directory
from gateway.identity.expiry import expiry_from
from gateway.identity.grants import GrantSet
from gateway.models import AuditEntry, Client, Record, Role
from gateway.store import Conflict, Missing, Store
from gateway.store.usage import UsageRow


def may(caller: Caller, collection: str, action: str, object_id: str | None = None) -> bool:
    """Whether `require` would pass: what the console asks before offering an action."""
    resource = f"/gateway/{collection}" + (f"/{object_id}" if object_id else "")
    return caller.grants.find(f"gateway:{collection}:{action}", resource) is not None


def no_tenant(caller: Caller, what: str = "write roles or records") -> None:
    if caller.tenant is not None:
        raise AccessDenied(f"tenant admins cannot {what}")


def tenant_may_set(caller: Caller, client: Client) -> None:
    """A tenant admin hands its clients only scopes and audiences it holds itself."""
    if caller.tenant is None:
        return
    extra = [s for s in client.scopes if s not in caller.identity.scopes]
    extra += [a for a in client.audiences if a not in caller.identity.audiences]
    if extra:
        raise AccessDenied(f"a tenant admin cannot give {extra[0]!r}, which it does not hold")


def may_confer_role(caller: Caller, role: Role) -> None:
    for permission in role.permissions:
        if permission.allow and not caller.grants.can_confer_action(permission.action):
            raise AccessDenied(f"you cannot confer {permission.action}: you do not hold it with grant: true")


def may_confer_record(caller: Caller, record: Record, store: Store) -> None:
    roles = store.get_roles(r for s in record.statements for r in s.roles)
    for i, statement in enumerate(record.statements):
        for role_id in statement.roles:
            role = roles.get(role_id)
            if role is None:
                raise InvalidRequest(f"statements[{i}].roles: no role {role_id}")
            for permission in role.permissions:
                if not permission.allow:
                    continue
                for resource in statement.resources:
                    if caller.grants.find(permission.action, resource, need_grant=True) is None:
                        raise AccessDenied(
                            f"you cannot confer {permission.action} on {resource}: you do not hold it with grant: true"
                        )


@dataclass(frozen=True)
class CredentialKind:
    """One kind of client credential: access keys, client secrets, registered public keys."""

    noun: str  # "access key", for messages
    make: Callable[[str, dict[str, Any]], tuple[Any, dict[str, Any]]]  # (model, shown once)
    add: Callable[[Any, str], Any]
    listing: Callable[[str], list[Any]]
    revoke: Callable[[str, str, str], None]
    render: Callable[[Any], dict[str, Any]]


class Actions:
    """The admin operations over one store; one instance per listener app."""

    def __init__(self, store: Store, directory: Directory, account_id: str) -> None:
        self.store = store
        self.directory = directory
        self.account_id = account_id
        self.administrators = Administrators(store)
        self.credentials: dict[str, CredentialKind] = {
            "access-keys": CredentialKind(
                "access key",
                self._make_key,
                store.create_access_key,
                lambda client_id: store.list_access_keys(client_id, with_expired=True),
                store.revoke_access_key,
                service.render_key,
            ),
            "secrets": CredentialKind(
                "secret",
                self._make_secret,
                store.create_client_secret,
                lambda client_id: store.list_client_secrets(client_id, with_expired=True),
                store.revoke_client_secret,
                service.render_secret,
            ),
            "public-keys": CredentialKind(
                "public key",
                self._make_public_key,
                store.add_public_key,
                store.list_public_keys,
                store.revoke_public_key,
                service.render_public_key,
            ),
        }

    # --- clients ----------------------------------------------------------------------------

    async def visible_client(self, caller: Caller, client_id: str) -> Client:
        """The client, when it exists and the caller's tenant (if any) owns it; else 404."""
        client = await asyncio.to_thread(self.store.get_client, client_id)
        if client is None or (caller.tenant is not None and client.tenant != caller.tenant):
            raise NotFound(f"no client {client_id}")
        return client

    async def client_call(self, caller: Caller, client_id: str, action: str) -> Client:
        """The client, when the caller may `action` it."""
        require(caller, "clients", action, client_id)
        return await self.visible_client(caller, client_id)

    async def create_client(self, caller: Caller, body: dict[str, Any]) -> Client:
        require(caller, "clients", "write")
        client = service.new_client(body, caller.tenant)
        tenant_may_set(caller, client)
        await asyncio.to_thread(self.store.create_client, client, caller.actor)
        return client

    async def list_clients(
        self,
        caller: Caller,
        cursor: str,
        limit: int,
        name_prefix: str | None = None,
        tenant: str | None = None,
        contains: str | None = None,
    ) -> tuple[list[Client], str | None]:
        """A page of clients, by id; `name_prefix`, `contains` (text anywhere in the name or id,
        any case: the console's search) and `tenant` narrow it (a tenant admin's own tenant
        always applies: asking for another one finds nothing)."""
        require(caller, "clients", "read")
        if caller.tenant is not None and tenant not in (None, caller.tenant):
            return [], None
        clients = await asyncio.to_thread(
            self.store.list_clients, caller.tenant or tenant, cursor, limit + 1, name_prefix, contains
        )
        more = len(clients) > limit
        clients = clients[:limit]
        return clients, (clients[-1].client_id if more else None)

    async def counts(self, caller: Caller) -> tuple[int, int]:
        """How many clients, and active access keys, the caller may see (its tenant's, if any)."""
        require(caller, "clients", "read")
        return await asyncio.to_thread(self.store.count_clients_and_keys, caller.tenant)

    async def update_client(
        self, caller: Caller, client_id: str, body: dict[str, Any], require_name: bool
    ) -> Client:
        require(caller, "clients", "write", client_id)
        client = await self.visible_client(caller, client_id)
        changed = service.updated_client(client, body, require_name=require_name)
        tenant_may_set(caller, changed)
        if changed.disabled and not client.disabled:
            await self._keeps_an_admin(Proposed(clients={client_id: changed}))
        try:
            await asyncio.to_thread(self.store.update_client, changed, caller.actor)
        except Missing:
            raise NotFound(f"no client {client_id}") from None
        return changed

    async def delete_client(self, caller: Caller, client_id: str) -> None:
        await self.client_call(caller, client_id, "write")
        await self._keeps_an_admin(Proposed(clients={client_id: None}))
        try:
            await asyncio.to_thread(self.store.delete_client, client_id, caller.actor)
        except Missing:
            raise NotFound(f"no client {client_id}") from None

    # --- client credentials -------------------------------------------------------------------

    def _make_key(self, client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        key, access_key = service.new_access_key(client_id, self.account_id, expiry_from(body))
        return key, service.render_key(key, access_key)

    @staticmethod
    def _make_secret(client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        secret, shown_once = service.new_client_secret(client_id, expiry_from(body))
        return secret, service.render_secret(secret, shown_once)

    @staticmethod
    def _make_public_key(client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        key = service.new_public_key(client_id, body)
        return key, service.render_public_key(key)

    async def add_credential(
        self, caller: Caller, kind: str, client_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """The new credential rendered, with its secret part: shown once, neither stored nor logged."""
        await self.client_call(caller, client_id, "write")
        credential = self.credentials[kind]
        model, shown_once = credential.make(client_id, body)
        try:
            await asyncio.to_thread(credential.add, model, caller.actor)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        except Missing:
            raise NotFound(f"no client {client_id}") from None
        return shown_once

    async def list_credentials(self, caller: Caller, kind: str, client_id: str) -> list[dict[str, Any]]:
        await self.client_call(caller, client_id, "read")
        credential = self.credentials[kind]
        found = await asyncio.to_thread(credential.listing, client_id)
        return [credential.render(item) for item in found]

    async def revoke_credential(self, caller: Caller, kind: str, client_id: str, ref: str) -> None:
        await self.client_call(caller, client_id, "write")
        credential = self.credentials[kind]
        await self._keeps_an_admin(Proposed(revoked=frozenset({ref})))
        try:
            await asyncio.to_thread(credential.revoke, client_id, ref, caller.actor)
        except Missing:
            raise NotFound(f"no active {credential.noun} {ref}") from None

    # --- roles and records --------------------------------------------------------------------

    async def put_role(
        self, caller: Caller, body: dict[str, Any], role_id: str | None, creating: bool
    ) -> Role:
        require(caller, "roles", "write", role_id)
        no_tenant(caller)
        role = service.role_from(body, role_id)
        may_confer_role(caller, role)
        await self._keeps_an_admin(Proposed(roles={role.role_id: role}))
        try:
            return await asyncio.to_thread(self.store.put_role, role, caller.actor, creating)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def put_record(
        self, caller: Caller, body: dict[str, Any], record_id: str | None, creating: bool
    ) -> Record:
        require(caller, "records", "write", record_id)
        no_tenant(caller)
        record = service.record_from(body, record_id, caller.actor)
        await asyncio.to_thread(may_confer_record, caller, record, self.store)
        await self._keeps_an_admin(Proposed(records={record.record_id: record}))
        try:
            return await asyncio.to_thread(self.store.put_record, record, caller.actor, creating)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def list_of(
        self,
        caller: Caller,
        collection: str,
        listing: Callable[[str, int], list[Any]],
        cursor: str,
        limit: int,
    ) -> tuple[list[Any], bool]:
        """A page of roles or records (paged by id); whether more follow."""
        require(caller, collection, "read")
        items = await asyncio.to_thread(listing, cursor, limit + 1)
        return items[:limit], len(items) > limit

    async def usage_of(self, caller: Caller, client_id: str, start: str, end: str) -> list[UsageRow]:
        """A client's request counts for the hours in [start, end) (issue 14)."""
        await self.client_call(caller, client_id, "read")
        return await asyncio.to_thread(self.store.usage_of, client_id, start, end)

    async def records_naming(self, caller: Caller, client_id: str) -> list[Record]:
        """The access records that give `client_id` something."""
        require(caller, "records", "read")
        return await asyncio.to_thread(self.store.records_for_user, client_id)

    async def get_one(self, caller: Caller, collection: str, getter: Callable[[str], Any], ref: str) -> Any:
        require(caller, collection, "read", ref)
        item = await asyncio.to_thread(getter, ref)
        if item is None:
            raise NotFound(f"no {collection[:-1]} {ref}")
        return item

    async def delete_one(
        self, caller: Caller, collection: str, deleter: Callable[[str, str], None], ref: str
    ) -> None:
        require(caller, collection, "write", ref)
        no_tenant(caller)
        if collection == "roles":
            await self._keeps_an_admin(Proposed(roles={ref: None}))
        elif collection == "records":
            await self._keeps_an_admin(Proposed(records={ref: None}))
        try:
            await asyncio.to_thread(deleter, ref, caller.actor)
        except Missing:
            raise NotFound(f"no {collection[:-1]} {ref}") from None

    async def _keeps_an_admin(self, change: Proposed) -> None:
        """409 when the change would leave no administrator (admin.lockout)."""
        await asyncio.to_thread(self.administrators.check, change)

    # --- authorization and audit --------------------------------------------------------------

    async def grants_of(self, caller: Caller, user_id: str, fresh: bool = False) -> GrantSet:
        """The grants of `user_id`, for a caller allowed to look: its own always; another
        client's with gateway:authorization:read, and for a tenant admin only in its tenant.
        `fresh` reads the store rather than the worker's cache (which follows the change feed
        within a poll): for a page that must show a change its viewer has just made."""
        if user_id == caller.client_id and not fresh:
            return caller.grants
        if user_id != caller.client_id:
            require(caller, "authorization", "read")
        if caller.tenant is not None and user_id != caller.client_id:
            other = await self.directory.client(user_id)
            if other is None or other.tenant != caller.tenant:
                raise NotFound(f"no user {user_id}")
        if fresh:
            return await asyncio.to_thread(self.directory.load_grants, user_id)
        return await self.directory.grant_set(user_id)

    async def audit(
        self,
        caller: Caller,
        before: int | None,
        limit: int,
        actor: str = "",
        action: str = "",
        target: str = "",
    ) -> tuple[list[AuditEntry], bool]:
        """A page of the audit log, newest first, optionally filtered (see Store.search_audit)."""
        require(caller, "audit", "read")
        no_tenant(caller, "read the gateway's audit log")
        entries = await asyncio.to_thread(self.store.search_audit, before, limit + 1, actor, action, target)
        return entries[:limit], len(entries) > limit
