"""The change feed (what the workers poll to drop cached entries), the store's metadata and the
audit log."""

from __future__ import annotations

import json

from gateway.models import AuditEntry, Change
from gateway.store.base import StoreBase


class FeedMixin(StoreBase):
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

    def list_audit(self, before: int | None = None, limit: int = 100) -> list[AuditEntry]:
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT id, at, actor, action, target, detail FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
                (before if before is not None else 2**62, limit),
            ).fetchall()
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
