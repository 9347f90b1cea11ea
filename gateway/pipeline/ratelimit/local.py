"""The `local` backend: limits kept in this process (exact per worker; N workers admit up to N
times the limit, and replicas do not share it). One dict lookup and a few float operations per
limit: well under the 5 µs budget (see scripts/bench `ratelimit_local`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.pipeline.ratelimit import Verdict, gcra
from gateway.quota import RateLimit


class LocalBackend:
    name = "local"
    reachable = True

    def __init__(self, max_keys: int = 200_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self.max_keys = max_keys
        self.clock = clock

    async def hit(self, keys: Sequence[str], limits: Sequence[RateLimit]) -> Verdict:
        return self.hit_now(keys, limits, self.clock())

    def hit_now(self, keys: Sequence[str], limits: Sequence[RateLimit], now: float) -> Verdict:
        tats = self._tats
        verdict, after = gcra([tats.get(k, 0.0) for k in keys], limits, now)
        if after:
            if len(tats) >= self.max_keys:
                self._prune(now)
            for key, tat in zip(keys, after, strict=True):
                tats[key] = tat
        return verdict

    def _prune(self, now: float) -> None:
        """Forget keys whose allowance is back in full (they behave as absent ones); when that is
        not enough, forget the oldest half (which can only admit more, never refuse wrongly)."""
        stale = [k for k, tat in self._tats.items() if tat <= now]
        for key in stale:
            del self._tats[key]
        if len(self._tats) >= self.max_keys:
            for key in list(self._tats)[: len(self._tats) // 2]:
                del self._tats[key]

    async def close(self) -> None:
        self._tats.clear()
