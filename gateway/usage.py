"""Per-worker usage counting (issue 14): request counts per client, hour and route, and when
each credential was last used, kept in memory and written to the store in batches.

On the hot path a request costs two dict updates (no lock: one event loop per worker); every
`flush_interval` (default 5 s) the worker swaps its dicts for empty ones and writes the old ones
in one store transaction from a thread. A failed write keeps the batch for the next round, up
to `max_pending` keys, so a store outage loses nothing short of that bound. The last batch is
written at shutdown; a worker killed with SIGKILL loses at most one interval of counts.

Client ids never become Prometheus labels (cardinality): usage lives in the store and is read
through `GET /v1/clients/{id}/usage`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.metrics import USAGE_FLUSHES
from gateway.store.usage import UsageKey, UsageMixin

log = logging.getLogger("gateway.usage")


def hour_iso(epoch_hour: int) -> str:
    return datetime.fromtimestamp(epoch_hour * 3600, UTC).strftime("%Y-%m-%dT%H:00:00Z")


class Tally:
    """Where one more allowed request of a client, route and credential is counted: valid for the
    batch it was made in and until the end of its minute (the hour of `_counts`' key and the
    minute of `_last_used` are that minute's). The hot path checks that it holds (the same
    `batch` object as the recorder's, before `until` by time.time(), which must be the recorder's
    clock) and increments `counts[0]`."""

    __slots__ = ("batch", "counts", "until")

    def __init__(self, counts: list[int], batch: object, until: float) -> None:
        self.counts = counts  # [allowed, refused] in the recorder's current batch
        self.batch = batch
        self.until = until  # epoch seconds: the next minute


def minute_iso(epoch_minute: int) -> str:
    return datetime.fromtimestamp(epoch_minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:00.000Z")


class UsageRecorder:
    def __init__(
        self,
        store: UsageMixin,
        flush_interval: float = 5.0,
        max_pending: int = 100_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.clock = clock
        # (client id, epoch hour, route id) → [allowed, refused]
        self._counts: dict[tuple[str, int, str], list[int]] = {}
        self._last_used: dict[str, int] = {}  # credential id → epoch minute
        self._lock = asyncio.Lock()  # one flush at a time (the loop's and a final one)
        # Replaced whenever the dicts are swapped for a flush: a Tally counts into the batch it was
        # made in, so it must not be used once that batch is on its way to the store.
        self.batch = object()

    def count(self, client_id: str, route_id: str, allowed: bool, credential_id: str | None) -> None:
        """The hot path: one authenticated request, allowed (forwarded) or refused."""
        self._count(self.clock(), client_id, route_id, allowed, credential_id)

    def _count(
        self, now: float, client_id: str, route_id: str, allowed: bool, credential_id: str | None
    ) -> list[int]:
        key = (client_id, int(now // 3600), route_id)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = [0, 0]
        counts[0 if allowed else 1] += 1
        if credential_id is not None:
            self._last_used[credential_id] = int(now // 60)
        return counts

    def tally(self, now: float, client_id: str, route_id: str, credential_id: str | None) -> Tally:
        """Count one allowed request at `now` (time.time()), and return what counts the next ones
        of the same client, route and credential with one increment while it holds (see Tally):
        the decision memo's hits, which are most requests, skip the key and the dict lookups."""
        counts = self._count(now, client_id, route_id, True, credential_id)
        return Tally(counts, self.batch, (now // 60 + 1) * 60)

    def used(self, credential_id: str) -> None:
        """A credential used without a proxied request (a client secret at the token endpoint)."""
        self._last_used[credential_id] = int(self.clock() // 60)

    @property
    def pending(self) -> int:
        return len(self._counts) + len(self._last_used)

    async def flush(self) -> bool:
        """Write what was counted since the last flush; False (keeping it) when the store failed."""
        async with self._lock:
            counts, self._counts = self._counts, {}
            last_used, self._last_used = self._last_used, {}
            self.batch = object()  # every Tally of the old batch stops holding, in the same step
            if not counts and not last_used:
                return True
            rows: dict[UsageKey, tuple[int, int]] = {
                (client, hour_iso(hour), route): (c[0], c[1]) for (client, hour, route), c in counts.items()
            }
            minutes = {credential: minute_iso(minute) for credential, minute in last_used.items()}
            try:
                await asyncio.to_thread(self.store.write_usage, rows, minutes)
            except Exception as exc:
                USAGE_FLUSHES.labels("failed").inc()
                log.warning("cannot write usage counts (kept for the next try): %s", exc)
                self._restore(counts, last_used)
                return False
            USAGE_FLUSHES.labels("written").inc()
            return True

    def _restore(self, counts: dict[tuple[str, int, str], list[int]], last_used: dict[str, int]) -> None:
        for key, (allowed, refused) in counts.items():
            if len(self._counts) >= self.max_pending and key not in self._counts:
                log.error(
                    "usage counts over %d keys could not be written; dropping the rest", self.max_pending
                )
                break
            mine = self._counts.setdefault(key, [0, 0])
            mine[0] += allowed
            mine[1] += refused
        for credential, minute in last_used.items():
            self._last_used[credential] = max(minute, self._last_used.get(credential, 0))

    async def run(self) -> None:
        """The flush loop; survives any error (a failed write is retried with the next batch)."""
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:  # never let the loop die quietly (ARCHITECTURE.md habit 13)
                log.exception("usage flush failed")
