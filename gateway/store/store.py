"""Every read and write of the identity data, on either backend.

Each write runs in one serialized transaction that also appends to the change feed (which the
workers' caches follow) and, for admin changes, to the audit log: a change is visible, invalidated
and audited together or not at all. Audit details never hold a secret (no private key, no hash).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from gateway.models import (
    AccessKey,
    AuditEntry,
    Change,
    Client,
    ClientPublicKey,
    ClientSecret,
    Permission,
    Record,
    Role,
    SigningKey,
    Statement,
    now_iso,
)
from gateway.store.backend import Backend, Cursor
from gateway.store.identities import IdentityRecords
from gateway.store.usage import UsageMixin

MAX_ACTIVE_KEYS = 5


class Missing(Exception):
    """No such object."""


class Conflict(Exception):
    """The object exists already, or a limit would be passed; the message is for the caller."""


_CLIENT_COLUMNS = "client_id, name, description, tenant, scopes, audiences, token_lifetime, disabled, created_at, updated_at"


def _client(row: Any) -> Client:
    return Client(
        client_id=row[0],
        name=row[1],
        description=row[2],
        tenant=row[3],
        scopes=tuple(json.loads(row[4])),
        audiences=tuple(json.loads(row[5])),
        token_lifetime=row[6],
        disabled=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


_KEY_COLUMNS = "key_id, client_id, public_key, created_at, revoked_at, expires_at, last_used"
_SECRET_COLUMNS = "secret_id, client_id, hash, created_at, revoked_at, expires_at, last_used"
# Active: not revoked and not expired (an expired credential does not count towards the limit).
_ACTIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"


def _key(row: Any) -> AccessKey:
    return AccessKey(row[0], row[1], bytes(row[2]), row[3], row[4], row[5], row[6])


def _unrevoked(with_expired: bool) -> str:
    return "revoked_at IS NULL" if with_expired else _ACTIVE


def _role(row: Any) -> Role:
    return Role(
        role_id=row[0],
        name=row[1],
        description=row[2],
        permissions=tuple(Permission(**p) for p in json.loads(row[3])),
        created_at=row[4],
        updated_at=row[5],
    )


def _statements_json(statements: Iterable[Statement]) -> str:
    return json.dumps([{"roles": list(s.roles), "resources": list(s.resources)} for s in statements])


class Store(UsageMixin, IdentityRecords):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def close(self) -> None:
        self.backend.close()

    # --- bookkeeping ------------------------------------------------------------------------

    @staticmethod
    def _change(cur: Cursor, kind: str, ref: str) -> None:
        cur.execute("INSERT INTO changes (at, kind, ref) VALUES (?, ?, ?)", (now_iso(), kind, ref))

    @staticmethod
    def _audit(
        cur: Cursor, actor: str, action: str, target: str, detail: dict[str, Any] | None = None
    ) -> None:
        cur.execute(
            "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (now_iso(), actor, action, target, json.dumps(detail or {}, sort_keys=True)),
        )

    def get_meta(self, key: str) -> str | None:
        with self.backend.read() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def latest_change(self) -> int:
        with self.backend.read() as cur:
            row = cur.execute("SELECT MAX(seq) FROM changes").fetchone()
        return int(row[0] or 0)

    def changes_since(self, seq: int, limit: int = 1000) -> list[Change]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT seq, kind, ref FROM changes WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit)
            ).fetchall()
        return [Change(int(r[0]), r[1], r[2]) for r in rows]

    def prune_changes(self, keep_after_iso: str) -> None:
        with self.backend.write() as cur:
            cur.execute(
                "DELETE FROM changes WHERE at < ? AND seq < (SELECT MAX(seq) FROM changes)", (keep_after_iso,)
            )

    # --- initialisation -------------------------------------------------------------------

    def initialize(
        self,
        account_id: str,
        client: Client,
        key: AccessKey,
        roles: tuple[Role, ...],
        record: Record,
        signing_keys: tuple[SigningKey, ...],
    ) -> bool:
        """Everything `gateway init` creates, in one transaction. Returns False (and changes
        nothing) when the store was initialised already, also by a replica racing this one."""
        with self.backend.write() as cur:
            if cur.execute("SELECT value FROM meta WHERE key = 'initialized'").fetchone():
                return False
            cur.execute("INSERT INTO meta (key, value) VALUES ('account_id', ?)", (account_id,))
            cur.execute("INSERT INTO meta (key, value) VALUES ('initialized', ?)", (now_iso(),))
            self._insert_client(cur, client)
            self._insert_key(cur, key)
            for role in roles:
                self._upsert_role(cur, role)
            self._upsert_record(cur, record)
            for signing_key in signing_keys:
                self._insert_signing_key(cur, signing_key)
            self._audit(
                cur, "gateway init", "init", "/gateway", {"clientId": client.client_id, "keyId": key.key_id}
            )
            self._change(cur, "grants", "*")
        return True

    # --- clients --------------------------------------------------------------------------

    @staticmethod
    def _insert_client(cur: Cursor, c: Client) -> None:
        cur.execute(
            f"INSERT INTO clients ({_CLIENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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

    def list_clients(self, tenant: str | None = None, after: str = "", limit: int = 100) -> list[Client]:
        where, params = "client_id > ?", [after]
        if tenant is not None:
            where += " AND tenant = ?"
            params.append(tenant)
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
                " disabled = ?, updated_at = ? WHERE client_id = ?",
                (
                    client.name,
                    client.description,
                    json.dumps(list(client.scopes)),
                    json.dumps(list(client.audiences)),
                    client.token_lifetime,
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

    # --- access keys ----------------------------------------------------------------------

    @staticmethod
    def _insert_key(cur: Cursor, key: AccessKey) -> None:
        cur.execute(
            "INSERT INTO access_keys (key_id, client_id, public_key, created_at, revoked_at, expires_at)"
            " VALUES (?, ?, ?, ?, NULL, ?)",
            (key.key_id, key.client_id, key.public_key, key.created_at, key.expires_at),
        )

    def create_access_key(self, key: AccessKey, actor: str) -> AccessKey:
        with self.backend.write() as cur:
            if not cur.execute("SELECT 1 FROM clients WHERE client_id = ?", (key.client_id,)).fetchone():
                raise Missing(key.client_id)
            active = cur.execute(
                f"SELECT COUNT(*) FROM access_keys WHERE client_id = ? AND {_ACTIVE}",
                (key.client_id, now_iso()),
            ).fetchone()[0]
            if active >= MAX_ACTIVE_KEYS:
                raise Conflict(f"a client has at most {MAX_ACTIVE_KEYS} active access keys; revoke one first")
            self._insert_key(cur, key)
            self._audit(
                cur, actor, "access_key.create", f"/gateway/clients/{key.client_id}/access-keys/{key.key_id}"
            )
            self._change(cur, "key", key.key_id)
            self._change(cur, "client", key.client_id)
        return key

    def get_access_key(self, key_id: str) -> AccessKey | None:
        with self.backend.read() as cur:
            row = cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM access_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        return None if row is None else _key(row)

    def list_access_keys(self, client_id: str, with_expired: bool = False) -> list[AccessKey]:
        """The client's active keys; with `with_expired`, the expired ones too (lists show them)."""
        with self.backend.read() as cur:
            rows = cur.execute(
                f"SELECT {_KEY_COLUMNS} FROM access_keys"
                f" WHERE client_id = ? AND {_unrevoked(with_expired)} ORDER BY created_at, key_id",
                (client_id,) if with_expired else (client_id, now_iso()),
            ).fetchall()
        return [_key(r) for r in rows]

    def revoke_access_key(self, client_id: str, key_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute(
                "UPDATE access_keys SET revoked_at = ? WHERE key_id = ? AND client_id = ? AND revoked_at IS NULL",
                (now_iso(), key_id, client_id),
            )
            if cur.rowcount == 0:
                raise Missing(key_id)
            self._audit(cur, actor, "access_key.revoke", f"/gateway/clients/{client_id}/access-keys/{key_id}")
            self._change(cur, "key", key_id)
            self._change(cur, "client", client_id)

    # --- roles ----------------------------------------------------------------------------

    @staticmethod
    def _upsert_role(cur: Cursor, role: Role) -> None:
        permissions = json.dumps(
            [
                {"action": p.action, "allow": p.allow, "grant": p.grant, "delegate": p.delegate}
                for p in role.permissions
            ]
        )
        cur.execute("DELETE FROM roles WHERE role_id = ?", (role.role_id,))
        cur.execute(
            "INSERT INTO roles (role_id, name, description, permissions, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (role.role_id, role.name, role.description, permissions, role.created_at, role.updated_at),
        )

    def put_role(self, role: Role, actor: str, create_only: bool = False) -> Role:
        with self.backend.write() as cur:
            existing = cur.execute(
                "SELECT created_at FROM roles WHERE role_id = ?", (role.role_id,)
            ).fetchone()
            if existing and create_only:
                raise Conflict(f"role {role.role_id} exists already")
            if existing:
                role = Role(
                    role.role_id, role.name, role.permissions, existing[0], role.updated_at, role.description
                )
            self._upsert_role(cur, role)
            self._audit(
                cur,
                actor,
                "role.put",
                f"/gateway/roles/{role.role_id}",
                {"permissions": [p.action for p in role.permissions]},
            )
            self._change(cur, "grants", role.role_id)
        return role

    def get_role(self, role_id: str) -> Role | None:
        with self.backend.read() as cur:
            row = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles WHERE role_id = ?",
                (role_id,),
            ).fetchone()
        return None if row is None else _role(row)

    def get_roles(self, role_ids: Iterable[str]) -> dict[str, Role]:
        ids = sorted(set(role_ids))
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles"
                f" WHERE role_id IN ({marks})",
                ids,
            ).fetchall()
        return {r[0]: _role(r) for r in rows}

    def list_roles(self, after: str = "", limit: int = 100) -> list[Role]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT role_id, name, description, permissions, created_at, updated_at FROM roles"
                " WHERE role_id > ? ORDER BY role_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_role(r) for r in rows]

    def delete_role(self, role_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM roles WHERE role_id = ?", (role_id,))
            if cur.rowcount == 0:
                raise Missing(role_id)
            self._audit(cur, actor, "role.delete", f"/gateway/roles/{role_id}")
            self._change(cur, "grants", role_id)

    # --- access records -------------------------------------------------------------------

    @staticmethod
    def _upsert_record(cur: Cursor, record: Record) -> None:
        cur.execute("DELETE FROM records WHERE record_id = ?", (record.record_id,))
        cur.execute(
            "INSERT INTO records (record_id, name, description, statements, created_by, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                record.record_id,
                record.name,
                record.description,
                _statements_json(record.statements),
                record.created_by,
                record.created_at,
                record.updated_at,
            ),
        )
        for position, user in enumerate(dict.fromkeys(record.users)):
            cur.execute(
                "INSERT INTO record_users (record_id, user_id, position) VALUES (?, ?, ?)",
                (record.record_id, user, position),
            )

    def put_record(self, record: Record, actor: str, create_only: bool = False) -> Record:
        with self.backend.write() as cur:
            existing = cur.execute(
                "SELECT created_at, created_by FROM records WHERE record_id = ?", (record.record_id,)
            ).fetchone()
            if existing and create_only:
                raise Conflict(f"record {record.record_id} exists already")
            if existing:
                record = Record(
                    record.record_id,
                    record.name,
                    record.users,
                    record.statements,
                    existing[0],
                    record.updated_at,
                    record.description,
                    existing[1],
                )
            self._upsert_record(cur, record)
            self._audit(
                cur,
                actor,
                "record.put",
                f"/gateway/records/{record.record_id}",
                {"users": list(record.users), "statements": json.loads(_statements_json(record.statements))},
            )
            self._change(cur, "grants", record.record_id)
        return record

    def _records(
        self, cur: Cursor, where: str, params: tuple[Any, ...], with_users: bool = True
    ) -> list[Record]:
        rows = cur.execute(
            "SELECT record_id, name, description, statements, created_by, created_at, updated_at FROM records"
            f" WHERE {where}",
            params,
        ).fetchall()
        records = []
        for r in rows:
            users = (
                [
                    u[0]
                    for u in cur.execute(
                        "SELECT user_id FROM record_users WHERE record_id = ? ORDER BY position", (r[0],)
                    ).fetchall()
                ]
                if with_users
                else []
            )
            statements = tuple(Statement(tuple(s["roles"]), tuple(s["resources"])) for s in json.loads(r[3]))
            records.append(Record(r[0], r[1], tuple(users), statements, r[5], r[6], r[2], r[4]))
        return records

    def get_record(self, record_id: str) -> Record | None:
        with self.backend.read() as cur:
            found = self._records(cur, "record_id = ?", (record_id,))
        return found[0] if found else None

    def list_records(self, after: str = "", limit: int = 100) -> list[Record]:
        with self.backend.read() as cur:
            return self._records(cur, "record_id > ? ORDER BY record_id LIMIT ?", (after, limit))

    def records_for_user(self, user_id: str, with_users: bool = True) -> list[Record]:
        """The records that name this user. Grant checks pass `with_users=False`: a record given
        to thousands of clients would otherwise load all of them on every cache miss."""
        with self.backend.read() as cur:
            return self._records(
                cur,
                "record_id IN (SELECT record_id FROM record_users WHERE user_id = ?) ORDER BY record_id",
                (user_id,),
                with_users,
            )

    def delete_record(self, record_id: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM record_users WHERE record_id = ?", (record_id,))
            cur.execute("DELETE FROM records WHERE record_id = ?", (record_id,))
            if cur.rowcount == 0:
                raise Missing(record_id)
            self._audit(cur, actor, "record.delete", f"/gateway/records/{record_id}")
            self._change(cur, "grants", record_id)

    # --- audit ----------------------------------------------------------------------------

    def list_audit(self, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT id, at, actor, action, target, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]

    # --- gateway signing keys -------------------------------------------------------------

    @staticmethod
    def _insert_signing_key(cur: Cursor, key: SigningKey) -> None:
        cur.execute(
            "INSERT INTO signing_keys (kid, alg, sealed_private, public_jwk, state, created_at, activated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                key.kid,
                key.alg,
                key.sealed_private,
                key.public_jwk,
                key.state,
                key.created_at,
                key.created_at if key.state == "current" else None,
            ),
        )

    def signing_keys(self) -> list[SigningKey]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT kid, alg, sealed_private, public_jwk, state, created_at, activated_at, retired_at"
                " FROM signing_keys ORDER BY created_at"
            ).fetchall()
        return [SigningKey(*r) for r in rows]

    # --- client secrets and registered public keys (the token server's client credentials) --

    def create_client_secret(self, secret: ClientSecret, actor: str) -> ClientSecret:
        with self.backend.write() as cur:
            if not cur.execute("SELECT 1 FROM clients WHERE client_id = ?", (secret.client_id,)).fetchone():
                raise Missing(secret.client_id)
            active = cur.execute(
                f"SELECT COUNT(*) FROM client_secrets WHERE client_id = ? AND {_ACTIVE}",
                (secret.client_id, now_iso()),
            ).fetchone()[0]
            if active >= MAX_ACTIVE_KEYS:
                raise Conflict(
                    f"a client has at most {MAX_ACTIVE_KEYS} active client secrets; revoke one first"
                )
            cur.execute(
                "INSERT INTO client_secrets (secret_id, client_id, hash, created_at, revoked_at, expires_at)"
                " VALUES (?, ?, ?, ?, NULL, ?)",
                (secret.secret_id, secret.client_id, secret.hash, secret.created_at, secret.expires_at),
            )
            self._audit(
                cur,
                actor,
                "client_secret.create",
                f"/gateway/clients/{secret.client_id}/secrets/{secret.secret_id}",
            )
            self._change(cur, "credential", secret.secret_id)
            self._change(cur, "client", secret.client_id)
        return secret

    def get_client_secret(self, secret_id: str) -> ClientSecret | None:
        with self.backend.read() as cur:
            row = cur.execute(
                f"SELECT {_SECRET_COLUMNS} FROM client_secrets WHERE secret_id = ?",
                (secret_id,),
            ).fetchone()
        return None if row is None else ClientSecret(*row)

    def list_client_secrets(self, client_id: str, with_expired: bool = False) -> list[ClientSecret]:
        with self.backend.read() as cur:
            rows = cur.execute(
                f"SELECT {_SECRET_COLUMNS} FROM client_secrets"
                f" WHERE client_id = ? AND {_unrevoked(with_expired)} ORDER BY created_at, secret_id",
                (client_id,) if with_expired else (client_id, now_iso()),
            ).fetchall()
        return [ClientSecret(*r) for r in rows]

    def revoke_client_secret(self, client_id: str, secret_id: str, actor: str) -> None:
        self._revoke("client_secrets", "secret_id", "client_secret", client_id, secret_id, actor, "secrets")

    def add_public_key(self, key: ClientPublicKey, actor: str) -> ClientPublicKey:
        with self.backend.write() as cur:
            if not cur.execute("SELECT 1 FROM clients WHERE client_id = ?", (key.client_id,)).fetchone():
                raise Missing(key.client_id)
            active = cur.execute(
                "SELECT COUNT(*) FROM client_public_keys WHERE client_id = ? AND revoked_at IS NULL",
                (key.client_id,),
            ).fetchone()[0]
            if active >= MAX_ACTIVE_KEYS:
                raise Conflict(
                    f"a client has at most {MAX_ACTIVE_KEYS} registered public keys; revoke one first"
                )
            cur.execute(
                "INSERT INTO client_public_keys (key_id, client_id, alg, jwk, created_at, revoked_at)"
                " VALUES (?, ?, ?, ?, ?, NULL)",
                (key.key_id, key.client_id, key.alg, key.jwk, key.created_at),
            )
            self._audit(
                cur,
                actor,
                "public_key.create",
                f"/gateway/clients/{key.client_id}/public-keys/{key.key_id}",
                {"alg": key.alg},
            )
            self._change(cur, "credential", key.key_id)
            self._change(cur, "client", key.client_id)
        return key

    def get_public_key(self, key_id: str) -> ClientPublicKey | None:
        with self.backend.read() as cur:
            row = cur.execute(
                "SELECT key_id, client_id, alg, jwk, created_at, revoked_at FROM client_public_keys WHERE key_id = ?",
                (key_id,),
            ).fetchone()
        return None if row is None else ClientPublicKey(*row)

    def list_public_keys(self, client_id: str) -> list[ClientPublicKey]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT key_id, client_id, alg, jwk, created_at, revoked_at FROM client_public_keys"
                " WHERE client_id = ? AND revoked_at IS NULL ORDER BY created_at, key_id",
                (client_id,),
            ).fetchall()
        return [ClientPublicKey(*r) for r in rows]

    def revoke_public_key(self, client_id: str, key_id: str, actor: str) -> None:
        self._revoke("client_public_keys", "key_id", "public_key", client_id, key_id, actor, "public-keys")

    def _revoke(
        self, table: str, column: str, noun: str, client_id: str, ref: str, actor: str, path: str
    ) -> None:
        with self.backend.write() as cur:
            cur.execute(
                f"UPDATE {table} SET revoked_at = ? WHERE {column} = ? AND client_id = ? AND revoked_at IS NULL",
                (now_iso(), ref, client_id),
            )
            if cur.rowcount == 0:
                raise Missing(ref)
            self._audit(cur, actor, f"{noun}.revoke", f"/gateway/clients/{client_id}/{path}/{ref}")
            self._change(cur, "credential", ref)
            self._change(cur, "client", client_id)

    # --- single-use assertion ids and revoked tokens --------------------------------------

    def use_jti(self, jti: str, expires_at: int, now: int) -> bool:
        """Record an assertion id; False when it was used already and has not expired."""
        with self.backend.write() as cur:
            row = cur.execute("SELECT expires_at FROM used_jtis WHERE jti = ?", (jti,)).fetchone()
            if row is not None and int(row[0]) >= now:
                return False
            cur.execute("DELETE FROM used_jtis WHERE jti = ? OR expires_at < ?", (jti, now))
            cur.execute("INSERT INTO used_jtis (jti, expires_at) VALUES (?, ?)", (jti, expires_at))
        return True

    def revoke_token(self, jti: str, client_id: str, expires_at: int, actor: str) -> None:
        with self.backend.write() as cur:
            if cur.execute("SELECT 1 FROM revoked_tokens WHERE jti = ?", (jti,)).fetchone():
                return
            cur.execute(
                "INSERT INTO revoked_tokens (jti, client_id, expires_at) VALUES (?, ?, ?)",
                (jti, client_id, expires_at),
            )
            self._audit(cur, actor, "token.revoke", f"/gateway/clients/{client_id}/tokens")
            self._change(cur, "token", jti)
            self._change(cur, "client", client_id)  # drops cached verifications of the client's tokens

    def revoked_tokens(self, now: int) -> dict[str, int]:
        """Revoked tokens that have not expired yet: jti → expiry. Expired ones are forgotten."""
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT jti, expires_at FROM revoked_tokens WHERE expires_at >= ?", (now,)
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def forget_expired(self, now: int) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (now,))
            cur.execute("DELETE FROM used_jtis WHERE expires_at < ?", (now,))

    # --- signing key lifecycle ------------------------------------------------------------

    def rotate_signing_keys(
        self, new_next: SigningKey, actor: str, only_if_current: str | None = None
    ) -> bool:
        """next → current, current → retired, and a new next; in one transaction. With
        `only_if_current`, nothing happens unless that kid is still current (so replicas that
        notice a due rotation at the same moment rotate once)."""
        with self.backend.write() as cur:
            rows = cur.execute(
                "SELECT kid, state FROM signing_keys WHERE state IN ('current', 'next')"
            ).fetchall()
            current = [r[0] for r in rows if r[1] == "current"]
            upcoming = [r[0] for r in rows if r[1] == "next"]
            if only_if_current is not None and current != [only_if_current]:
                return False
            now = now_iso()
            for kid in current:
                cur.execute(
                    "UPDATE signing_keys SET state = 'retired', retired_at = ? WHERE kid = ?", (now, kid)
                )
            if upcoming:
                cur.execute(
                    "UPDATE signing_keys SET state = 'current', activated_at = ? WHERE kid = ?",
                    (now, upcoming[0]),
                )
                self._insert_signing_key(cur, new_next)
            else:  # no next key published yet: the new one becomes current at once
                self._insert_signing_key(cur, replace(new_next, state="current"))
                cur.execute("UPDATE signing_keys SET activated_at = ? WHERE kid = ?", (now, new_next.kid))
            self._audit(cur, actor, "signing_key.rotate", "/gateway/signing-keys", {"retired": current})
            self._change(cur, "signing", new_next.kid)
        return True

    def drop_retired_signing_keys(self, retired_before_iso: str) -> int:
        with self.backend.write() as cur:
            cur.execute(
                "DELETE FROM signing_keys WHERE state = 'retired' AND retired_at < ?", (retired_before_iso,)
            )
            dropped = cur.rowcount
            if dropped:
                self._change(cur, "signing", "*")
        return dropped

    def add_next_signing_key(self, key: SigningKey) -> bool:
        """Publish a next key unless one exists already (replicas may race to add it)."""
        with self.backend.write() as cur:
            if cur.execute("SELECT 1 FROM signing_keys WHERE state = 'next'").fetchone():
                return False
            self._insert_signing_key(cur, key)
            self._change(cur, "signing", key.kid)
        return True
