"""Throttling of failed client authentications, shared by every worker of the gateway.

Failures are counted per source address and per (client id, source address) over a sliding
minute; past either limit the endpoint answers 429 with Retry-After before checking anything.
Keying the per-client count by address too means an attacker failing for a client id from its
own addresses never locks that client out of its valid credentials at its own address.

The counts live in `gateway.group.Counters` (issue 9, defect 9): one table for all the worker
processes of a replica, so the limits are the configured ones whatever `workers` is, and fixed
in size, so caller-chosen client ids of any length cannot grow memory. Each replica counts on
its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from gateway.group import Counters

WINDOW = 60.0


class Throttle:
    def __init__(
        self,
        per_client: int,
        per_address: int,
        clock: Callable[[], float] = time.time,
        name: str = "throttle",
    ) -> None:
        self.per_client = per_client
        self.per_address = per_address
        self.counters = Counters(name, window=WINDOW, clock=clock)

    @staticmethod
    def _keys(address: str, client_id: str | None) -> list[str]:
        # NUL cannot occur in an address or a client id the gateway reads, so keys cannot collide.
        keys = [f"a\x00{address}"]
        if client_id:
            keys.append(f"c\x00{client_id}\x00{address}")
        return keys

    def retry_after(self, address: str, client_id: str | None) -> int | None:
        """Seconds to wait when this address (or this client at this address) is over its limit."""
        for key, limit in zip(self._keys(address, client_id), (self.per_address, self.per_client), strict=False):
            count, until = self.counters.estimate(key)
            if count >= limit:
                return min(int(WINDOW) + 1, max(1, math.ceil(until)))
        return None

    def failed(self, address: str, client_id: str | None) -> None:
        for key in self._keys(address, client_id):
            self.counters.add(key)
