"""Requests and refusals over the last hour, from the gateway's own counters (the console's
overview; no Prometheus server needed).

Every `interval` a worker samples the cumulative `gateway_requests_total`, summed over its labels.
With several workers the counters are read through prometheus_client's multi-process collector,
so whichever worker samples sees the total of all of them; the last hour is then the difference
between the newest sample and the oldest one not older than an hour. Counts cover this instance
(one `gateway serve`, all its workers), not the other replicas; a worker started less than an hour
ago reports the span it has seen.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, values

from gateway.background import every

# Decisions that are a refusal of a caller (401, 403, 429); 400/404 are malformed or unmatched.
REFUSED = frozenset({"unauthenticated", "denied", "rate_limited"})
HOUR = 3600.0
log = logging.getLogger("gateway.metrics")


@dataclass(frozen=True, slots=True)
class Traffic:
    requests: int
    refused: int
    seconds: float  # the span the counts cover (an hour, or less after a start)


def read_totals() -> tuple[float, float]:
    """(all requests, refused requests) answered since the instance started."""
    registry: CollectorRegistry = REGISTRY
    if values.ValueClass is not values.MutexValue:  # several workers: read every worker's file
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    requests = refused = 0.0
    for family in registry.collect():
        if family.name != "gateway_requests":
            continue
        for sample in family.samples:
            if sample.name != "gateway_requests_total":
                continue
            requests += sample.value
            if sample.labels.get("decision") in REFUSED:
                refused += sample.value
    return requests, refused


class TrafficHistory:
    def __init__(
        self,
        read: Callable[[], tuple[float, float]] = read_totals,
        clock: Callable[[], float] = time.monotonic,
        interval: float = 60.0,
    ) -> None:
        self.read = read
        self.clock = clock
        self.interval = interval
        self._samples: deque[tuple[float, float, float]] = deque()

    def sample(self) -> None:
        now = self.clock()
        requests, refused = self.read()
        self._samples.append((now, requests, refused))
        while len(self._samples) > 1 and self._samples[1][0] <= now - HOUR:
            self._samples.popleft()

    def last_hour(self) -> Traffic:
        """Counts from the oldest sample within the hour (or the one just before it) to now."""
        now = self.clock()
        requests_now, refused_now = self.read()
        if not self._samples:
            return Traffic(0, 0, 0.0)
        start, requests, refused = self._samples[0]
        if now - start > HOUR and len(self._samples) > 1:
            start, requests, refused = self._samples[1]
        return Traffic(int(requests_now - requests), int(refused_now - refused), now - start)

    async def run(self) -> None:
        async def step() -> None:
            await asyncio.to_thread(self.sample)

        await every(self.interval, step, what="traffic sampling", log=log, first_delay=False)
