"""Single-use assertion ids (`jti` of client assertions) and revoked gateway tokens, both kept
until the token or assertion would have expired anyway."""

from __future__ import annotations

from gateway.store.base import StoreBase


class TokensMixin(StoreBase):
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
