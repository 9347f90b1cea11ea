"""Service clients. Deleting one deletes its access keys with it (each key's change is fed, so
every worker drops it at once)."""

from __future__ import annotations

import json
from typing import Any

from gateway.models import Client
from gateway.quota import parse_rate_limit
from gateway.store.backend import Cursor
from gateway.store.base import Missing, StoreBase

_CLIENT_COLUMNS = (
    "client_id, name, description, tenant, scopes, audiences, token_lifetime, disabled, created_at, updated_at,"
    " rate_limit"
)


def _client(row: Any) -> Client:
    return Client(
        client_id=row[0],
        name=row[1],
        description=row[2],
        tenant=row[3],
        scopes=tuple(json.loads(row[4])),
        audiences=tuple(json.loads(row[5])),
        token_lifetime=row[6],
        rate_limit=None if row[10] is None else parse_rate_limit(json.loads(row[10])),
        disabled=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


def _rate_limit_json(client: Client) -> str | None:
    return None if client.rate_limit is None else json.dumps(client.rate_limit.as_json())


def like_anywhere(text: str) -> str:
    """A LIKE pattern (with ESCAPE '\\') matching `text` anywhere, its wildcards taken literally."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class ClientsMixin(StoreBase):
    @staticmethod
    def _insert_client(cur: Cursor, c: Client) -> None:
        cur.execute(
            f"INSERT INTO clients ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.client_id,
                c.name,
                c.description,
                c.tenant,
                json.dumps(list(c.scopes)),
                json.dumps(list(c.audiences)),
                c.token_lifetime,
                int(c.disabled),
                c.created_at,
                c.updated_at,
                _rate_limit_json(c),
            ),
        )

    def create_client(self, client: Client, actor: str) -> Client:
        with self.backend.write() as cur:
            self._insert_client(cur, client)
            self._audit(
                cur, actor, "client.create", f"/gateway/clients/{client.client_id}", {"name": client.name}
            )
            self._change(cur, "client", client.client_id)
        return client

    def get_client(self, client_id: str) -> Client | None:
        with self.backend.read() as cur:
            row = cur.execute(
                f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE client_id = ?", (client_id,)
            ).fetchone()
        return None if row is None else _client(row)

    def list_clients(
        self,
        tenant: str | None = None,
        after: str = "",
        limit: int = 100,
        name_prefix: str | None = None,
        contains: str | None = None,
    ) -> list[Client]:
        where = "client_id > ?"
        params: list[object] = [after]
        if tenant is not None:
            where += " AND tenant = ?"
            params.append(tenant)
        if name_prefix:  # substr, not LIKE: no wildcard in a name can widen the search
            where += " AND substr(name, 1, ?) = ?"
            params += [len(name_prefix), name_prefix]
        if contains:  # the console's search: in the name or the id, any case, wildcards literal
            where += " AND (LOWER(name) LIKE ? ESCAPE '\\' OR LOWER(client_id) LIKE ? ESCAPE '\\')"
            params += [like_anywhere(contains)] * 2
        with self.backend.read() as cur:
            rows = cur.execute(
                f"SELECT {_CLIENT_COLUMNS} FROM clients WHERE {where} ORDER BY client_id LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_client(r) for r in rows]

    def update_client(self, client: Client, actor: str) -> Client:
        with self.backend.write() as cur:
            cur.execute(
                "UPDATE clients SET name = ?, description = ?, scopes = ?, audiences = ?, token_lifetime = ?,"
                " rate_limit = ?,"
                " disabled = ?, updated_at = ? WHERE client_id = ?",
                (
                    client.name,
                    client.description,
                    json.dumps(list(client.scopes)),
                    json.dumps(list(client.audiences)),
                    client.token_lifetime,
                    _rate_limit_json(client),
                    int(client.disabled),
                    client.updated_at,
                    client.client_id,
                ),
            )
            if cur.rowcount == 0:
                raise Missing(client.client_id)
            self._audit(
                cur,
                actor,
                "client.update",
                f"/gateway/clients/{client.client_id}",
                {
                    "name": client.name,
                    "disabled": client.disabled,
                    "scopes": list(client.scopes),
                    "audiences": list(client.audiences),
                    "rateLimit": None if client.rate_limit is None else client.rate_limit.as_json(),
                },
            )
            self._change(cur, "client", client.client_id)
        return client

    def delete_client(self, client_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            keys = cur.execute("SELECT key_id FROM access_keys WHERE client_id = ?", (client_id,)).fetchall()
            cur.execute("DELETE FROM access_keys WHERE client_id = ?", (client_id,))
            cur.execute("DELETE FROM clients WHERE client_id = ?", (client_id,))
            if cur.rowcount == 0:
                raise Missing(client_id)
            self._audit(cur, actor, "client.delete", f"/gateway/clients/{client_id}")
            for (key_id,) in keys:
                self._change(cur, "key", key_id)
            self._change(cur, "client", client_id)
