"""The web console's records: server-side sessions, and the searches and counts its pages show.

A session row holds a SHA-256 of the session id (the cookie's value never reaches the store),
the client that signed in and the credential it proved, and an absolute expiry. Every worker and
replica reads the same rows, so a sign-out anywhere ends the session everywhere at once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.models import AuditEntry, now_iso
from gateway.store.base import StoreBase
from gateway.store.clients import like_anywhere


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    client_id: str
    credential_id: str
    created_at: str
    expires_at: int  # epoch seconds


class ConsoleStore(StoreBase):
    # --- sessions -------------------------------------------------------------------------

    def create_console_session(
        self, id_hash: str, client_id: str, credential_id: str, expires_at: int, now: int
    ) -> None:
        with self.backend.write() as cur:
            cur.execute("DELETE FROM console_sessions WHERE expires_at <= ?", (now,))
            cur.execute(
                "INSERT INTO console_sessions (id_hash, client_id, credential_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (id_hash, client_id, credential_id, now_iso(), expires_at),
            )
            self._audit(
                cur, client_id, "console.sign_in", "/gateway/console", {"credentialId": credential_id}
            )

    def get_console_session(self, id_hash: str, now: int) -> ConsoleSession | None:
        with self.backend.read() as cur:
            row = cur.execute(
                "SELECT client_id, credential_id, created_at, expires_at FROM console_sessions"
                " WHERE id_hash = ? AND expires_at > ?",
                (id_hash, now),
            ).fetchone()
        return None if row is None else ConsoleSession(row[0], row[1], row[2], int(row[3]))

    def delete_console_session(self, id_hash: str) -> None:
        with self.backend.write() as cur:
            row = cur.execute(
                "SELECT client_id FROM console_sessions WHERE id_hash = ?", (id_hash,)
            ).fetchone()
            cur.execute("DELETE FROM console_sessions WHERE id_hash = ?", (id_hash,))
            if row is not None:
                self._audit(cur, row[0], "console.sign_out", "/gateway/console")

    # --- what the pages show ----------------------------------------------------------------

    def count_clients_and_keys(self, tenant: str | None) -> tuple[int, int]:
        """How many clients, and how many access keys not revoked, in a tenant (or in all)."""
        fence, params = ("WHERE tenant = ?", (tenant,)) if tenant is not None else ("", ())
        with self.backend.read() as cur:
            clients = cur.execute(f"SELECT COUNT(*) FROM clients {fence}", params).fetchone()[0]
            keys = cur.execute(
                "SELECT COUNT(*) FROM access_keys WHERE revoked_at IS NULL"
                f" AND client_id IN (SELECT client_id FROM clients {fence})",
                params,
            ).fetchone()[0]
        return int(clients), int(keys)

    def search_audit(
        self, before: int | None, limit: int, actor: str = "", action: str = "", target: str = ""
    ) -> list[AuditEntry]:
        """Audit entries, newest first; `actor` and `action` match exactly (an action ending
        in `.` matches its family: `client.`), `target` matches where it contains the text."""
        where: list[str] = ["id < ?"]
        params: list[object] = [before if before is not None else 2**62]
        if actor:
            where.append("actor = ?")
            params.append(actor)
        if action.endswith("."):
            where.append("action LIKE ? ESCAPE '\\'")
            params.append(action.replace("_", "\\_") + "%")
        elif action:
            where.append("action = ?")
            params.append(action)
        if target:
            where.append("LOWER(target) LIKE ? ESCAPE '\\'")
            params.append(like_anywhere(target))
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT id, at, actor, action, target, detail FROM audit"
                f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
