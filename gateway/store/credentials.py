"""A client's credentials: access keys, client secrets (hashes only) and registered public keys.

The three share one shape, written once here: creation checks the client exists and that it
stays under MAX_ACTIVE_KEYS active ones (an expired one does not count), and creation and
revocation are audited and fed as a change of the credential and of its client, in one
transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.models import AccessKey, ClientPublicKey, ClientSecret, now_iso
from gateway.store.backend import Cursor
from gateway.store.base import MAX_ACTIVE_KEYS, Conflict, Missing, StoreBase

_KEY_COLUMNS = "key_id, client_id, public_key, created_at, revoked_at, expires_at, last_used"
_SECRET_COLUMNS = "secret_id, client_id, hash, created_at, revoked_at, expires_at, last_used"
_PUBLIC_KEY_COLUMNS = "key_id, client_id, alg, jwk, created_at, revoked_at"
# Active: not revoked and not expired (an expired credential does not count towards the limit).
_ACTIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)"


@dataclass(frozen=True, slots=True)
class _Kind:
    table: str
    id_column: str
    noun: str  # in audit actions: access_key.create, client_secret.revoke, …
    path: str  # in audit targets: /gateway/clients/{client}/{path}/{id}
    change: str  # the change-feed kind of the credential itself
    plural: str  # in the limit's message
    expires: bool  # has an expiry (public keys have none)


_ACCESS_KEYS = _Kind("access_keys", "key_id", "access_key", "access-keys", "key", "active access keys", True)
_SECRETS = _Kind(
    "client_secrets", "secret_id", "client_secret", "secrets", "credential", "active client secrets", True
)
_PUBLIC_KEYS = _Kind(
    "client_public_keys", "key_id", "public_key", "public-keys", "credential", "registered public keys", False
)


def _key(row: Any) -> AccessKey:
    return AccessKey(row[0], row[1], bytes(row[2]), row[3], row[4], row[5], row[6])


class CredentialsMixin(StoreBase):
    # --- the shared shape -----------------------------------------------------------------

    def _add(
        self,
        kind: _Kind,
        client_id: str,
        ref: str,
        insert: str,
        values: tuple[Any, ...],
        actor: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.backend.write() as cur:
            if not cur.execute("SELECT 1 FROM clients WHERE client_id = ?", (client_id,)).fetchone():
                raise Missing(client_id)
            active = cur.execute(
                f"SELECT COUNT(*) FROM {kind.table} WHERE client_id = ? AND {self._active(kind)}",
                (client_id, now_iso()) if kind.expires else (client_id,),
            ).fetchone()[0]
            if active >= MAX_ACTIVE_KEYS:
                raise Conflict(f"a client has at most {MAX_ACTIVE_KEYS} {kind.plural}; revoke one first")
            cur.execute(insert, values)
            target = f"/gateway/clients/{client_id}/{kind.path}/{ref}"
            self._audit(cur, actor, f"{kind.noun}.create", target, detail)
            self._change(cur, kind.change, ref)
            self._change(cur, "client", client_id)

    def _revoke(self, kind: _Kind, client_id: str, ref: str, actor: str) -> None:
        with self.backend.write() as cur:
            cur.execute(
                f"UPDATE {kind.table} SET revoked_at = ? WHERE {kind.id_column} = ? AND client_id = ?"
                " AND revoked_at IS NULL",
                (now_iso(), ref, client_id),
            )
            if cur.rowcount == 0:
                raise Missing(ref)
            self._audit(cur, actor, f"{kind.noun}.revoke", f"/gateway/clients/{client_id}/{kind.path}/{ref}")
            self._change(cur, kind.change, ref)
            self._change(cur, "client", client_id)

    def _listed(self, kind: _Kind, columns: str, client_id: str, with_expired: bool) -> list[Any]:
        """The client's active credentials of a kind; with `with_expired`, the expired ones too
        (lists show them)."""
        current = with_expired or not kind.expires
        with self.backend.read() as cur:
            return cur.execute(
                f"SELECT {columns} FROM {kind.table} WHERE client_id = ?"
                f" AND {'revoked_at IS NULL' if current else _ACTIVE} ORDER BY created_at, {kind.id_column}",
                (client_id,) if current else (client_id, now_iso()),
            ).fetchall()

    def _one(self, kind: _Kind, columns: str, ref: str) -> Any:
        with self.backend.read() as cur:
            return cur.execute(
                f"SELECT {columns} FROM {kind.table} WHERE {kind.id_column} = ?", (ref,)
            ).fetchone()

    @staticmethod
    def _active(kind: _Kind) -> str:
        return _ACTIVE if kind.expires else "revoked_at IS NULL"

    # --- access keys ----------------------------------------------------------------------

    _INSERT_KEY = (
        "INSERT INTO access_keys (key_id, client_id, public_key, created_at, revoked_at, expires_at)"
        " VALUES (?, ?, ?, ?, NULL, ?)"
    )

    @classmethod
    def _insert_key(cls, cur: Cursor, key: AccessKey) -> None:
        cur.execute(cls._INSERT_KEY, cls._key_values(key))

    @staticmethod
    def _key_values(key: AccessKey) -> tuple[Any, ...]:
        return (key.key_id, key.client_id, key.public_key, key.created_at, key.expires_at)

    def create_access_key(self, key: AccessKey, actor: str) -> AccessKey:
        self._add(_ACCESS_KEYS, key.client_id, key.key_id, self._INSERT_KEY, self._key_values(key), actor)
        return key

    def get_access_key(self, key_id: str) -> AccessKey | None:
        row = self._one(_ACCESS_KEYS, _KEY_COLUMNS, key_id)
        return None if row is None else _key(row)

    def list_access_keys(self, client_id: str, with_expired: bool = False) -> list[AccessKey]:
        return [_key(r) for r in self._listed(_ACCESS_KEYS, _KEY_COLUMNS, client_id, with_expired)]

    def revoke_access_key(self, client_id: str, key_id: str, actor: str) -> None:
        self._revoke(_ACCESS_KEYS, client_id, key_id, actor)

    # --- client secrets -------------------------------------------------------------------

    def create_client_secret(self, secret: ClientSecret, actor: str) -> ClientSecret:
        self._add(
            _SECRETS,
            secret.client_id,
            secret.secret_id,
            "INSERT INTO client_secrets (secret_id, client_id, hash, created_at, revoked_at, expires_at)"
            " VALUES (?, ?, ?, ?, NULL, ?)",
            (secret.secret_id, secret.client_id, secret.hash, secret.created_at, secret.expires_at),
            actor,
        )
        return secret

    def get_client_secret(self, secret_id: str) -> ClientSecret | None:
        row = self._one(_SECRETS, _SECRET_COLUMNS, secret_id)
        return None if row is None else ClientSecret(*row)

    def list_client_secrets(self, client_id: str, with_expired: bool = False) -> list[ClientSecret]:
        return [ClientSecret(*r) for r in self._listed(_SECRETS, _SECRET_COLUMNS, client_id, with_expired)]

    def revoke_client_secret(self, client_id: str, secret_id: str, actor: str) -> None:
        self._revoke(_SECRETS, client_id, secret_id, actor)

    # --- registered public keys (private_key_jwt) ------------------------------------------

    def add_public_key(self, key: ClientPublicKey, actor: str) -> ClientPublicKey:
        self._add(
            _PUBLIC_KEYS,
            key.client_id,
            key.key_id,
            f"INSERT INTO client_public_keys ({_PUBLIC_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, NULL)",
            (key.key_id, key.client_id, key.alg, key.jwk, key.created_at),
            actor,
            {"alg": key.alg},
        )
        return key

    def get_public_key(self, key_id: str) -> ClientPublicKey | None:
        row = self._one(_PUBLIC_KEYS, _PUBLIC_KEY_COLUMNS, key_id)
        return None if row is None else ClientPublicKey(*row)

    def list_public_keys(self, client_id: str) -> list[ClientPublicKey]:
        return [
            ClientPublicKey(*r) for r in self._listed(_PUBLIC_KEYS, _PUBLIC_KEY_COLUMNS, client_id, False)
        ]

    def revoke_public_key(self, client_id: str, key_id: str, actor: str) -> None:
        self._revoke(_PUBLIC_KEYS, client_id, key_id, actor)
