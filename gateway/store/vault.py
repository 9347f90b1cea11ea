"""The credentials vault's rows: connections, users' credentials and login states (contract §8).

Everything secret is stored sealed (gateway.crypto.Sealer); this module never sees a plaintext
token. A credential is changed only inside `vault_session`, which holds a lock on its
(connection, user) across workers and replicas (PostgreSQL: an advisory lock on that key;
SQLite: an immediate transaction) for as long as a refresh at the provider takes, so that one
refresh runs at a time and the rotated refresh token is written before anyone sees the new
access token. Writes audit (never a token) and append to the change feed, as every write does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import asdict, replace
from typing import Any

from gateway.models import now_iso
from gateway.store.backend import Backend, Cursor
from gateway.store.base import Conflict, Missing, StoreBase
from gateway.vault_models import (
    ACCESS_TOKEN,
    CONNECTION_SECRET,
    LOGIN_VERIFIER,
    REFRESH_TOKEN,
    Connection,
    LoginState,
    VaultEntry,
    binding,
)

_ENTRY_COLUMNS = (
    "connection_id, user_id, sealed_refresh, sealed_access, token_type, access_expires_at, state, version,"
    " created_at, updated_at"
)


def _entry(row: Any) -> VaultEntry:
    return VaultEntry(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        None if row[5] is None else int(row[5]),
        row[6],
        int(row[7]),
        row[8],
        row[9],
    )


def _connection(row: Any) -> Connection:
    settings = json.loads(row[1])
    for name in ("scopes", "allowed_redirects"):
        settings[name] = tuple(settings[name])
    settings["authorization_params"] = tuple(tuple(p) for p in settings["authorization_params"])
    return Connection(**settings, sealed_secret=row[2], created_at=row[3], updated_at=row[4])


def credential_target(connection_id: str, user_id: str) -> str:
    return f"/gateway/connections/{connection_id}/users/{user_id}/credentials"


def lock_key(connection_id: str, user_id: str) -> str:
    return json.dumps(["vault", connection_id, user_id])


class VaultSession:
    """One (connection, user) credential under its lock: `entry` as it is now (after waiting for
    any refresh in flight), and the writes that end the session's work."""

    def __init__(self, backend: Backend, cur: Cursor, connection_id: str, user_id: str) -> None:
        self._backend = backend
        self._cur = cur
        self.connection_id = connection_id
        self.user_id = user_id
        row = cur.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM vault_entries WHERE connection_id = ? AND user_id = ?",
            (connection_id, user_id),
        ).fetchone()
        self.entry = None if row is None else _entry(row)
        self._joined = False

    def _join(self) -> Cursor:
        if not self._joined:
            self._backend.join_writers(self._cur)
            self._joined = True
        return self._cur

    def save(self, entry: VaultEntry, actor: str, action: str, detail: dict[str, Any]) -> VaultEntry:
        """Insert the credential, or replace the one this session read (its version moves on),
        audited, in the change feed. Raises Missing when the row read was deleted meanwhile (a
        connection's deletion does not wait for this lock): nothing is written back then."""
        cur = self._join()
        entry = replace(entry, version=(self.entry.version + 1) if self.entry else 1, updated_at=now_iso())
        values = (
            entry.sealed_refresh,
            entry.sealed_access,
            entry.token_type,
            entry.access_expires_at,
            entry.state,
            entry.version,
            entry.updated_at,
        )
        if self.entry is not None:
            entry = replace(entry, created_at=self.entry.created_at)
            cur.execute(
                "UPDATE vault_entries SET sealed_refresh = ?, sealed_access = ?, token_type = ?,"
                " access_expires_at = ?, state = ?, version = ?, updated_at = ?"
                " WHERE connection_id = ? AND user_id = ? AND version = ?",
                (*values, self.connection_id, self.user_id, self.entry.version),
            )
            if cur.rowcount != 1:
                raise Missing(f"{self.connection_id}/{self.user_id}")
        else:
            cur.execute(
                f"INSERT INTO vault_entries ({_ENTRY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.connection_id, self.user_id, *values[:6], entry.created_at, entry.updated_at),
            )
        _write_bookkeeping(cur, actor, action, self.connection_id, self.user_id, detail)
        self.entry = entry
        return entry

    def delete(self, actor: str, detail: dict[str, Any]) -> bool:
        cur = self._join()
        cur.execute(
            "DELETE FROM vault_entries WHERE connection_id = ? AND user_id = ?",
            (self.connection_id, self.user_id),
        )
        if cur.rowcount == 0:
            return False
        _write_bookkeeping(cur, actor, "credentials.delete", self.connection_id, self.user_id, detail)
        self.entry = None
        return True


def _write_bookkeeping(
    cur: Cursor, actor: str, action: str, connection_id: str, user_id: str, detail: dict[str, Any]
) -> None:
    cur.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (
            now_iso(),
            actor,
            action,
            credential_target(connection_id, user_id),
            json.dumps({"connectionId": connection_id, "userId": user_id, **detail}, sort_keys=True),
        ),
    )
    cur.execute(
        "INSERT INTO changes (at, kind, ref) VALUES (?, ?, ?)",
        (now_iso(), "vault", json.dumps([connection_id, user_id])),
    )


class VaultRecords(StoreBase):
    """Store mixin: the vault's tables."""

    # --- connections ----------------------------------------------------------------------

    def list_connections(self, after: str = "", limit: int = 100) -> list[Connection]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT connection_id, settings, sealed_secret, created_at, updated_at FROM vault_connections"
                " WHERE connection_id > ? ORDER BY connection_id LIMIT ?",
                (after, limit),
            ).fetchall()
        return [_connection(r) for r in rows]

    def get_connection(self, connection_id: str) -> Connection | None:
        with self.backend.read() as cur:
            row = cur.execute(
                "SELECT connection_id, settings, sealed_secret, created_at, updated_at FROM vault_connections"
                " WHERE connection_id = ?",
                (connection_id,),
            ).fetchone()
        return None if row is None else _connection(row)

    def put_connection(self, connection: Connection, actor: str, create_only: bool) -> Connection:
        settings = {
            k: v
            for k, v in asdict(connection).items()
            if k not in ("sealed_secret", "created_at", "updated_at")
        }
        with self.backend.write() as cur:
            existing = cur.execute(
                "SELECT created_at FROM vault_connections WHERE connection_id = ?",
                (connection.connection_id,),
            ).fetchone()
            if existing and create_only:
                raise Conflict(f"connection {connection.connection_id} exists already")
            if existing:
                connection = replace(connection, created_at=existing[0])
            cur.execute("DELETE FROM vault_connections WHERE connection_id = ?", (connection.connection_id,))
            cur.execute(
                "INSERT INTO vault_connections (connection_id, settings, sealed_secret, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (
                    connection.connection_id,
                    json.dumps(settings),
                    connection.sealed_secret,
                    connection.created_at,
                    connection.updated_at,
                ),
            )
            self._audit(
                cur,
                actor,
                "connection.update" if existing else "connection.create",
                f"/gateway/connections/{connection.connection_id}",
                {"tokenUrl": connection.token_url, "clientId": connection.client_id},
            )
            self._change(cur, "connection", connection.connection_id)
        return connection

    def delete_connection(self, connection_id: str, actor: str) -> int:
        """Delete a connection and every credential stored for it; returns how many went."""
        with self.backend.write() as cur:
            cur.execute("DELETE FROM vault_connections WHERE connection_id = ?", (connection_id,))
            if cur.rowcount == 0:
                raise Missing(connection_id)
            cur.execute("DELETE FROM vault_entries WHERE connection_id = ?", (connection_id,))
            dropped = cur.rowcount
            cur.execute("DELETE FROM vault_login_states WHERE connection_id = ?", (connection_id,))
            self._audit(
                cur,
                actor,
                "connection.delete",
                f"/gateway/connections/{connection_id}",
                {"credentials": dropped},
            )
            self._change(cur, "connection", connection_id)
        return dropped

    # --- credentials ----------------------------------------------------------------------

    def get_vault_entry(self, connection_id: str, user_id: str) -> VaultEntry | None:
        with self.backend.read() as cur:
            row = cur.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM vault_entries WHERE connection_id = ? AND user_id = ?",
                (connection_id, user_id),
            ).fetchone()
        return None if row is None else _entry(row)

    @contextlib.contextmanager
    def vault_session(self, connection_id: str, user_id: str) -> Iterator[VaultSession]:
        """The credential under its cross-process lock (waits for a refresh in flight)."""
        with self.backend.exclusive(lock_key(connection_id, user_id)) as cur:
            yield VaultSession(self.backend, cur, connection_id, user_id)

    def audit_batch(self, entries: list[tuple[str, str, str, str, dict[str, Any]]]) -> None:
        """Audit rows gathered in memory (credential reads answered from the cache), written in
        one transaction: `(at, actor, action, target, detail)`."""
        if not entries:
            return
        with self.backend.write() as cur:
            for at, actor, action, target, detail in entries:
                cur.execute(
                    "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                    (at, actor, action, target, json.dumps(detail, sort_keys=True)),
                )

    # --- login states ---------------------------------------------------------------------

    def add_login_state(self, state: LoginState, now: int) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM vault_login_states WHERE expires_at < ?", (now,))
            cur.execute(
                "INSERT INTO vault_login_states (state_hash, connection_id, user_id, sealed_verifier,"
                " redirect_after, expires_at, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    state.state_hash,
                    state.connection_id,
                    state.user_id,
                    state.sealed_verifier,
                    state.redirect_after,
                    state.expires_at,
                    state.actor,
                ),
            )
            self._audit(
                cur,
                state.actor,
                "credentials.authorize",
                credential_target(state.connection_id, state.user_id),
                {"connectionId": state.connection_id, "userId": state.user_id},
            )

    def take_login_state(self, state_hash: str) -> LoginState | None:
        """The login state, removed in the same transaction: each is used at most once, also
        when two callbacks race (only one delete finds the row)."""
        with self.backend.write() as cur:
            row = cur.execute(
                "SELECT state_hash, connection_id, user_id, sealed_verifier, redirect_after, expires_at, actor"
                " FROM vault_login_states WHERE state_hash = ?",
                (state_hash,),
            ).fetchone()
            if row is None:
                return None
            cur.execute("DELETE FROM vault_login_states WHERE state_hash = ?", (state_hash,))
            if cur.rowcount != 1:
                return None
        return LoginState(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6])

    # --- master key rotation --------------------------------------------------------------

    def sealed_rows(self) -> Iterator[tuple[str, tuple[str, ...], str, str, str]]:
        """Every value sealed under the master key: (table, key, column, sealed value, the
        associated data it was sealed with)."""
        with self.backend.read() as cur:
            signing = cur.execute("SELECT kid, sealed_private FROM signing_keys").fetchall()
            connections = cur.execute(
                "SELECT connection_id, sealed_secret FROM vault_connections WHERE sealed_secret IS NOT NULL"
            ).fetchall()
            entries = cur.execute(
                "SELECT connection_id, user_id, sealed_refresh, sealed_access FROM vault_entries"
            ).fetchall()
            states = cur.execute(
                "SELECT state_hash, connection_id, user_id, sealed_verifier FROM vault_login_states"
            ).fetchall()
        for kid, sealed in signing:
            yield "signing_keys", (kid,), "sealed_private", sealed, f"signing-key:{kid}"
        for cid, sealed in connections:
            yield "vault_connections", (cid,), "sealed_secret", sealed, binding(CONNECTION_SECRET, cid)
        for cid, uid, refresh, access in entries:
            yield "vault_entries", (cid, uid), "sealed_refresh", refresh, binding(REFRESH_TOKEN, cid, uid)
            if access is not None:
                yield "vault_entries", (cid, uid), "sealed_access", access, binding(ACCESS_TOKEN, cid, uid)
        for state_hash, cid, uid, sealed in states:
            yield (
                "vault_login_states",
                (state_hash,),
                "sealed_verifier",
                sealed,
                binding(LOGIN_VERIFIER, cid, uid, state_hash),
            )

    _KEYS = {
        "signing_keys": ("kid",),
        "vault_connections": ("connection_id",),
        "vault_entries": ("connection_id", "user_id"),
        "vault_login_states": ("state_hash",),
    }
    _COLUMNS = {"sealed_private", "sealed_secret", "sealed_refresh", "sealed_access", "sealed_verifier"}

    def replace_sealed(self, table: str, key: tuple[str, ...], column: str, old: str, new: str) -> bool:
        """Compare-and-swap one sealed value: False (nothing written) when it changed since it
        was read, e.g. a refresh stored a rotated token meanwhile, which is then sealed under
        the current key already."""
        if table not in self._KEYS or column not in self._COLUMNS:
            raise ValueError(f"not a sealed column: {table}.{column}")
        where = " AND ".join(f"{k} = ?" for k in self._KEYS[table])
        with self.backend.write() as cur:
            cur.execute(f"UPDATE {table} SET {column} = ? WHERE {where} AND {column} = ?", (new, *key, old))
            # No change-feed entry: the plaintext is the same, nothing cached goes stale.
            return cur.rowcount == 1

    def audit_rotation(self, actor: str, detail: dict[str, Any]) -> None:
        with self.backend.write() as cur:
            self._audit(cur, actor, "master_key.rotate", "/gateway/master-key", detail)
