"""The `local` backend: limits kept in this process (exact per worker; N workers admit up to N
times the limit, and replicas do not share it). One dict lookup and a few float operations per
limit: well under the 5 µs budget (see scripts/bench `ratelimit_local`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from gateway.pipeline.ratelimit import _EPSILON, Verdict, gcra
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
        if len(keys) == 1:  # the common case, written out: this runs on every limited request
            key, limit = keys[0], limits[0]
            tat = tats.get(key, now)
            if tat < now:
                tat = now
            level = tat + limit.interval - now
            if level - limit.tolerance > _EPSILON:
                return False, level - limit.tolerance, [tat - now]
            if len(tats) >= self.max_keys and key not in tats:
                self._prune(now)
            tats[key] = tat + limit.interval
            return True, 0.0, [level]
        if len(keys) == 2:  # a client limit and a route limit: both must admit, then both count
            (k1, k2), (l1, l2) = keys, limits
            t1, t2 = tats.get(k1, now), tats.get(k2, now)
            if t1 < now:
                t1 = now
            if t2 < now:
                t2 = now
            over1, over2 = t1 + l1.interval - now - l1.tolerance, t2 + l2.interval - now - l2.tolerance
            if over1 > _EPSILON or over2 > _EPSILON:
                return False, max(over1, over2, 0.0), [t1 - now, t2 - now]
            if len(tats) >= self.max_keys:
                self._prune(now)
            tats[k1], tats[k2] = t1 + l1.interval, t2 + l2.interval
            return True, 0.0, [t1 + l1.interval - now, t2 + l2.interval - now]
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
