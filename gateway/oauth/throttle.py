"""Throttling of failed client authentications (per worker process).

Failures are counted per source address and per (client id, source address) over a sliding
minute; past either limit the endpoint answers 429 with Retry-After before checking anything.
Keying the per-client count by address too means an attacker failing for a client id from its
own addresses never locks that client out of its valid credentials at its own address.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from cachetools import TTLCache

WINDOW = 60.0


class Throttle:
    def __init__(
        self, per_client: int, per_address: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_client = per_client
        self.per_address = per_address
        self.clock = clock
        self._failures: TTLCache[tuple[str, str], deque[float]] = TTLCache(100_000, WINDOW)

    def _recent(self, key: tuple[str, str]) -> deque[float]:
        window = self._failures.get(key)
        if window is None:
            window = self._failures[key] = deque()
        cutoff = self.clock() - WINDOW
        while window and window[0] < cutoff:
            window.popleft()
        return window

    def retry_after(self, address: str, client_id: str | None) -> int | None:
        """Seconds to wait when this address (or this client at this address) is over its limit."""
        checks = [(("", address), self.per_address)]
        if client_id:
            checks.append(((client_id, address), self.per_client))
        for key, limit in checks:
            window = self._recent(key)
            if len(window) >= limit:
                return max(1, int(window[0] + WINDOW - self.clock()) + 1)
        return None

    def failed(self, address: str, client_id: str | None) -> None:
        now = self.clock()
        self._recent(("", address)).append(now)
        if client_id:
            self._recent((client_id, address)).append(now)
            self._failures[(client_id, address)] = self._failures[(client_id, address)]  # refresh TTL
        self._failures[("", address)] = self._failures[("", address)]
