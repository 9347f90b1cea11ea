"""What an admin caller may do with the vault (contract §8), for the admin API and the web
console alike (the pattern of gateway/admin/actions.py): each call takes the authenticated
`Caller` and checks its permissions itself.

Connections need `gateway:connections:read|write` on `/gateway/connections[/<id>]`. A user's
credential needs `credentials:read|write` on the connection's resource for that user
(`/user-credentials/refresh-tokens/users/{userId}` unless the connection says otherwise); the
vault checks that. Connections from the config file are listed and read here and changed only in
the file (409).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from gateway.admin.auth import Caller, require
from gateway.errors import ConflictError, NotFound
from gateway.store import Conflict, Missing, Store
from gateway.vault.login import Login
from gateway.vault.service import AccessToken, Vault
from gateway.vault_models import Connection, connection_from


class VaultActions:
    def __init__(self, store: Store, vault: Vault, login: Login) -> None:
        self.store = store
        self.vault = vault
        self.login = login

    def _configured_refused(self, connection_id: str) -> None:
        if self.vault.configured(connection_id) is not None:
            raise ConflictError(f"connection {connection_id} is defined in the config file; change it there")

    # --- connections ------------------------------------------------------------------------

    async def list_connections(
        self, caller: Caller, cursor: str, limit: int
    ) -> tuple[list[Connection], str | None]:
        require(caller, "connections", "read")
        stored = await asyncio.to_thread(self.store.list_connections, cursor, limit + 1)
        merged = sorted(
            [c for c in self.vault.configured_connections() if c.connection_id > cursor]
            + [c for c in stored if self.vault.configured(c.connection_id) is None],
            key=lambda c: c.connection_id,
        )
        more = len(merged) > limit
        merged = merged[:limit]
        return merged, merged[-1].connection_id if more else None

    async def get_connection(self, caller: Caller, connection_id: str) -> Connection:
        require(caller, "connections", "read", connection_id)
        found = self.vault.configured(connection_id) or await asyncio.to_thread(
            self.store.get_connection, connection_id
        )
        if found is None:
            raise NotFound(f"no connection {connection_id}")
        return found

    async def put_connection(
        self, caller: Caller, connection_id: str | None, body: dict[str, Any]
    ) -> Connection:
        """POST (connection_id None: the id comes from the body; 409 if it exists) or PUT."""
        require(caller, "connections", "write", connection_id)
        existing: Connection | None = None
        if connection_id is not None:
            self._configured_refused(connection_id)
            existing = await asyncio.to_thread(self.store.get_connection, connection_id)
        connection, secret = connection_from(body, connection_id, existing=existing)
        self._configured_refused(connection.connection_id)
        if secret is not None:
            connection = replace(
                connection, sealed_secret=self.vault.seal_secret(connection.connection_id, secret)
            )
        try:
            return await asyncio.to_thread(
                self.store.put_connection, connection, caller.actor, connection_id is None
            )
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def delete_connection(self, caller: Caller, connection_id: str) -> None:
        require(caller, "connections", "write", connection_id)
        self._configured_refused(connection_id)
        try:
            await asyncio.to_thread(self.store.delete_connection, connection_id, caller.actor)
        except Missing:
            raise NotFound(f"no connection {connection_id}") from None

    # --- users' credentials -------------------------------------------------------------------

    async def credentials(self, caller: Caller, connection_id: str, user_id: str) -> AccessToken:
        return await self.vault.credentials(caller.grants, caller.actor, connection_id, user_id)

    async def put_credentials(
        self, caller: Caller, connection_id: str, user_id: str, body: dict[str, Any]
    ) -> None:
        await self.vault.put(caller.grants, caller.actor, connection_id, user_id, body)

    async def delete_credentials(self, caller: Caller, connection_id: str, user_id: str) -> None:
        await self.vault.delete(caller.grants, caller.actor, connection_id, user_id)

    async def authorize(self, caller: Caller, connection_id: str, user_id: str, body: dict[str, Any]) -> str:
        return await self.login.authorize(caller.grants, caller.actor, connection_id, user_id, body)
