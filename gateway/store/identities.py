"""Trusted external identities in the store (contract §5), a mixin of Store.

Every write also appends an `identity` change (the workers reload their index of entries) and a
`client` change for each client the entry maps to before and after, which drops the cached
verifications made under the entry."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from gateway.models import TrustedIdentity
from gateway.store.backend import Backend, Cursor

_COLUMNS = (
    "identity_id, issuer, audience, conditions, client_id, jwks_uri, preset, revision, created_at, updated_at"
)


def _entry(row: Any) -> TrustedIdentity:
    return TrustedIdentity(
        identity_id=row[0],
        issuer=row[1],
        audience=row[2],
        conditions=tuple(sorted(json.loads(row[3]).items())),
        client_id=row[4],
        jwks_uri=row[5],
        preset=row[6],
        revision=int(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


def _audit_detail(entry: TrustedIdentity) -> dict[str, Any]:
    return {
        "issuer": entry.issuer,
        "audience": entry.audience,
        "conditions": dict(entry.conditions),
        "clientId": entry.client_id,
    }


class IdentityRecords:
    backend: Backend

    if TYPE_CHECKING:  # provided by Store

        @staticmethod
        def _change(cur: Cursor, kind: str, ref: str) -> None: ...

        @staticmethod
        def _audit(
            cur: Cursor, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
        ) -> None: ...

    def put_trusted_identity(
        self, entry: TrustedIdentity, actor: str, expected_revision: int | None = None
    ) -> TrustedIdentity:
        """Create (`expected_revision` None: the id must be new) or replace (the stored revision
        must still be `expected_revision`, so two concurrent PUTs cannot both win)."""
        from gateway.store.base import Conflict

        with self.backend.write() as cur:
            row = cur.execute(
                "SELECT client_id, revision FROM trusted_identities WHERE identity_id = ?",
                (entry.identity_id,),
            ).fetchone()
            if expected_revision is None and row is not None:
                raise Conflict(f"identity {entry.identity_id} exists already")
            if expected_revision is not None and (row is None or int(row[1]) != expected_revision):
                raise Conflict(f"identity {entry.identity_id} changed meanwhile; read it again")
            cur.execute("DELETE FROM trusted_identities WHERE identity_id = ?", (entry.identity_id,))
            cur.execute(
                f"INSERT INTO trusted_identities ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.identity_id,
                    entry.issuer,
                    entry.audience,
                    json.dumps(dict(entry.conditions), sort_keys=True),
                    entry.client_id,
                    entry.jwks_uri,
                    entry.preset,
                    entry.revision,
                    entry.created_at,
                    entry.updated_at,
                ),
            )
            self._audit(
                cur,
                actor,
                "identity.create" if row is None else "identity.update",
                f"/gateway/identities/{entry.identity_id}",
                _audit_detail(entry),
            )
            self._change(cur, "identity", entry.identity_id)
            for client_id in {entry.client_id, *([row[0]] if row else [])}:
                self._change(cur, "client", client_id)
        return entry

    def get_trusted_identity(self, identity_id: str) -> TrustedIdentity | None:
        with self.backend.read() as cur:
            row = cur.execute(
                f"SELECT {_COLUMNS} FROM trusted_identities WHERE identity_id = ?", (identity_id,)
            ).fetchone()
        return None if row is None else _entry(row)

    def list_trusted_identities(
        self, after: str = "", limit: int | None = None, tenant: str | None = None
    ) -> list[TrustedIdentity]:
        """Entries by id after `after`; with `tenant`, only those mapping to its clients."""
        where, params = "identity_id > ?", [after]
        if tenant is not None:
            where += " AND client_id IN (SELECT client_id FROM clients WHERE tenant = ?)"
            params.append(tenant)
        sql = f"SELECT {_COLUMNS} FROM trusted_identities WHERE {where} ORDER BY identity_id"
        args: list[Any] = list(params)
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.backend.read() as cur:
            rows = cur.execute(sql, args).fetchall()
        return [_entry(r) for r in rows]

    def delete_trusted_identity(self, identity_id: str, actor: str) -> None:
        from gateway.store.base import Missing

        with self.backend.write() as cur:
            row = cur.execute(
                "SELECT client_id FROM trusted_identities WHERE identity_id = ?", (identity_id,)
            ).fetchone()
            if row is None:
                raise Missing(identity_id)
            cur.execute("DELETE FROM trusted_identities WHERE identity_id = ?", (identity_id,))
            self._audit(cur, actor, "identity.delete", f"/gateway/identities/{identity_id}")
            self._change(cur, "identity", identity_id)
            self._change(cur, "client", row[0])
