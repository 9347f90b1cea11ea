"""The `redis://` backend: limits shared by every worker and replica, in one round trip.

One Lua script (EVALSHA; redis-py loads it again after a Redis restart) reads the keys' stored
theoretical arrival times, decides with Redis's own clock (so the gateways' clocks do not
matter), and stores the new times with an expiry only when every limit admits the request.

When Redis does not answer within `rate_limits.timeout`, the backend counts as down for a second:
requests in that second do not wait on Redis again (the failure mode applies at once), and a
watcher PINGs once a second to notice it is back, which /readyz reports.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway.pipeline.ratelimit import BackendDown, Verdict
from gateway.quota import RateLimit

log = logging.getLogger("gateway.ratelimit")

DOWN_FOR = 1.0  # seconds a failed call keeps the backend marked down (the watcher may clear it)

_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local admitted = 1
local retry = 0
local base = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  base[i] = tat
  local over = tat + interval - now - tolerance
  if over > 1e-9 then
    admitted = 0
    if over > retry then retry = over end
  end
end
local out = {admitted, string.format('%.6f', retry)}
for i = 1, #KEYS do
  local level = base[i] - now
  if admitted == 1 then
    local interval = tonumber(ARGV[2 * i - 1])
    level = level + interval
    redis.call('SET', KEYS[i], string.format('%.6f', base[i] + interval), 'PX', math.ceil(level * 1000) + 1000)
  end
  out[#out + 1] = string.format('%.6f', level)
end
return out
"""


class RedisBackend:
    name = "redis"

    def __init__(self, url: str, prefix: str, timeout: float) -> None:
        self.prefix = prefix
        self.timeout = timeout
        # No retries inside redis-py: one round trip, and the failure mode decides the rest.
        self.client: Any = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
        self.script = self.client.register_script(_SCRIPT)
        self._down_until = 0.0
        self._reachable = True
        self._logged = 0.0

    @property
    def reachable(self) -> bool:
        return self._reachable and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._reachable = False
        self._down_until = now + DOWN_FOR
        if now - self._logged > 10:  # once per 10 s, not once per request
            self._logged = now
            log.warning("rate limits: Redis is unreachable (%s)", type(exc).__name__)

    async def hit(self, keys: Sequence[str], limits: Sequence[RateLimit]) -> Verdict:
        if time.monotonic() < self._down_until:
            raise BackendDown()
        args: list[str] = []
        for limit in limits:
            args += [repr(limit.interval), repr(limit.tolerance)]
        try:
            async with asyncio.timeout(self.timeout):
                result = await self.script(keys=[self.prefix + k for k in keys], args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            raise BackendDown() from None
        self._reachable = True
        return bool(int(result[0])), float(result[1]), [float(v) for v in result[2:]]

    async def watch(self, interval: float = 1.0) -> None:
        """PING once a second, so readiness follows Redis even when no request comes."""
        while True:
            try:
                async with asyncio.timeout(self.timeout):
                    await self.client.ping()
                self._reachable = True
                self._down_until = 0.0
            except (RedisError, OSError, TimeoutError) as exc:
                self._failed(exc)
            except Exception:  # never let the watcher die quietly
                log.exception("rate limits: Redis watcher failed")
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self.client.aclose()
