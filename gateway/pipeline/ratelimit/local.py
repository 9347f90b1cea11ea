"""The `local` backend: the limits kept on this machine, exact for the whole gateway (replicas do
not share them: that is what Redis is for).

- One worker (`LocalBackend`): a dict in the process. One lookup and a few float operations per
  limit: well under the 5 µs budget (see scripts/bench `ratelimit_local`).
- Several workers (`SharedBackend`): the same GCRA over a fixed-size table that every worker of
  the gateway maps (gateway.group, as the token endpoint's throttle), under its lock, so a limit
  admits what it says whatever `workers` is. A per-process count admitted up to N times a limit
  with N workers. Costs a lock and a hash more (a few µs).
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable, Sequence

from gateway.group import Record, Shared, find_slot, key_hash
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


# A slot: the key's hash and its theoretical arrival time. time.monotonic is one clock for every
# process of the machine (CLOCK_MONOTONIC), so the workers' times compare.
_TAT = struct.Struct("<Qd")
# A limited client's keys come back on every request of it: hashed once (BLAKE2b cost ~1 µs).
_hash = functools.lru_cache(maxsize=65_536)(key_hash)


def _tat(record: Record) -> float:
    return float(record[1])


class SharedBackend:
    name = "local"
    reachable = True

    def __init__(
        self, slots: int = 131_072, clock: Callable[[], float] = time.monotonic, name: str = "ratelimit"
    ) -> None:
        if slots < 16:  # twice the probes: a key's probes never wrap round onto themselves
            raise ValueError("a shared rate-limit table needs at least 16 slots")
        self.slots = slots  # 16 bytes each: 2 MiB by default, whatever callers send
        self.clock = clock
        self.shared = Shared(name, slots * _TAT.size)

    async def hit(self, keys: Sequence[str], limits: Sequence[RateLimit]) -> Verdict:
        return self.hit_now(keys, limits, self.clock())

    def hit_now(self, keys: Sequence[str], limits: Sequence[RateLimit], now: float) -> Verdict:
        hashes = [_hash(key) for key in keys]
        slots: list[int] = []
        tats: list[float] = []

        def free(record: Record) -> bool:  # empty, or a key whose allowance is back in full (as absent)
            return bool(record[0] == 0 or record[1] <= now)

        with self.shared as data:
            for h in hashes:
                # With no slot free, the key whose allowance is the most restored is forgotten:
                # that can only admit more, never refuse wrongly.
                slot, found = find_slot(data, _TAT, self.slots, h, free, _tat, slots)
                slots.append(slot)
                tats.append(0.0 if found is None else found[1])
            verdict, after = gcra(tats, limits, now)
            if after:  # empty when refused: a refused request spends nothing
                for slot, h, tat in zip(slots, hashes, after, strict=True):
                    _TAT.pack_into(data, slot * _TAT.size, h, tat)
        return verdict

    async def close(self) -> None:
        """Nothing to let go: the table is the group's, and the other workers still count in it."""
