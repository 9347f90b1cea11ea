"""Usage counts and credentials' last use (issue 14), written in batches.

The workers count in memory (`gateway.usage.UsageRecorder`) and hand this mixin one batch every
few seconds, written in ONE transaction: adding to the per-(client, hour, route) counters and
moving `last_used` of access keys and client secrets forward. These writes are bookkeeping, not
identity changes: they append nothing to the change feed (no cache anywhere needs to drop
anything) and nothing to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.store.backend import Backend

#: (client id, hour as ISO 8601 `YYYY-MM-DDTHH:00:00Z`, route id)
UsageKey = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class UsageRow:
    hour: str
    route: str
    allowed: int
    refused: int


class UsageMixin:
    backend: Backend

    def write_usage(self, counts: Mapping[UsageKey, tuple[int, int]], last_used: Mapping[str, str]) -> None:
        """Add `counts` ((allowed, refused) per key) and record `last_used` (credential id →
        minute, ISO) in one transaction. `last_used` only ever moves forward, so batches from
        several workers and replicas may land in any order."""
        with self.backend.write() as cur:
            for (client_id, hour, route), (allowed, refused) in counts.items():
                cur.execute(
                    "INSERT INTO usage (client_id, hour, route, allowed, refused) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (client_id, hour, route) DO UPDATE"
                    " SET allowed = usage.allowed + excluded.allowed, refused = usage.refused + excluded.refused",
                    (client_id, hour, route, allowed, refused),
                )
            for credential_id, minute in last_used.items():
                table, column = _CREDENTIAL_TABLES.get(credential_id[:4], (None, None))
                if table is None:
                    continue  # registered public keys carry no last-use time
                cur.execute(
                    f"UPDATE {table} SET last_used = ? WHERE {column} = ? AND (last_used IS NULL OR last_used < ?)",
                    (minute, credential_id, minute),
                )

    def usage_of(self, client_id: str, start: str, end: str, limit: int = 10_000) -> list[UsageRow]:
        """A client's counts for the hours in [start, end), oldest first."""
        with self.backend.read() as cur:
            rows = cur.execute(
                "SELECT hour, route, allowed, refused FROM usage WHERE client_id = ? AND hour >= ? AND hour < ?"
                " ORDER BY hour, route LIMIT ?",
                (client_id, start, end, limit),
            ).fetchall()
        return [UsageRow(r[0], r[1], int(r[2]), int(r[3])) for r in rows]


# credential id prefix → (table, id column); ids are `acc_…` and `sec_…`
_CREDENTIAL_TABLES = {"acc_": ("access_keys", "key_id"), "sec_": ("client_secrets", "secret_id")}
