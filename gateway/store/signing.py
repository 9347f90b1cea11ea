"""The gateway's own signing keys (sealed under the master key): next, current and retired, and
their rotation in one transaction."""

from __future__ import annotations

from dataclasses import replace

from gateway.models import SigningKey, now_iso
from gateway.store.backend import Cursor
from gateway.store.base import StoreBase


class SigningKeysMixin(StoreBase):
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
