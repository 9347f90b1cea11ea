"""What every part of the store shares: the backend, and the two rows every admin write adds in
its own transaction (a change-feed entry the workers' caches follow, an audit entry). The store
is one class (`gateway.store.store.Store`) made of one mixin per record kind, each in its own
module over this base."""

from __future__ import annotations

import json
from typing import Any

from gateway.models import now_iso
from gateway.store.backend import Backend, Cursor

MAX_ACTIVE_KEYS = 5


class Missing(Exception):
    """No such object."""


class Conflict(Exception):
    """The object exists already, or a limit would be passed; the message is for the caller."""


class StoreBase:
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def close(self) -> None:
        self.backend.close()

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
