"""Rate limits: a stage after authentication and authorization (issue 14, contract §7).

Two limits may apply to a request, and both must admit it: the client's own (`rateLimit` on the
client, all its calls) and the route's (`rate_limit:` in the policy, per client calling that
route). Both are counted per authenticated client, so no caller can spend another's budget, and
a refused request (401, 403) spends nothing. A request is admitted only when every limit admits
it, and then counts against all of them (one atomic step, in Redis too).

Backends by URL, as the store is: `local` (on this machine, shared by the gateway's workers; each
replica counts on its own) or `redis://…` (shared by every worker and replica; one round trip).
When Redis cannot be reached, `rate_limits.failure_mode` decides: `fail_closed` (the default)
answers 503, `fail_open` admits without counting; /readyz says which.

Answers carry the IETF headers (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy`
(`"client";q=100;w=60`) and `RateLimit` (`"client";r=42;t=17`: requests left, seconds until the
full quota is back); a refusal is 429 `rate_limited` with `Retry-After`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from gateway.errors import RateLimited, RateLimitUnavailable
from gateway.models import Identity
from gateway.policy.model import Route
from gateway.quota import RateLimit

ResponseHeaders = tuple[tuple[bytes, bytes], ...]
#: (admitted, seconds until a refused request could pass, per limit: seconds of allowance in use)
Verdict = tuple[bool, float, list[float]]

_EPSILON = 1e-9  # float sums of intervals must not refuse the last request of a burst


class BackendDown(Exception):
    """The backend cannot answer now (Redis unreachable or too slow)."""


class LimitBackend(Protocol):
    name: str

    async def hit(self, keys: Sequence[str], limits: Sequence[RateLimit]) -> Verdict: ...

    @property
    def reachable(self) -> bool: ...

    async def close(self) -> None: ...


def gcra(tats: Sequence[float], limits: Sequence[RateLimit], now: float) -> tuple[Verdict, list[float]]:
    """One GCRA step over several limits at once: the verdict, and the new theoretical arrival
    times to store when admitted. `tats` are the stored ones (0 when absent)."""
    retry = 0.0
    admitted = True
    base = [max(t, now) for t in tats]
    for tat, limit in zip(base, limits, strict=True):
        over = tat + limit.interval - now - limit.tolerance
        if over > _EPSILON:
            admitted = False
            retry = max(retry, over)
    if not admitted:
        return (False, retry, [t - now for t in base]), []
    after = [t + limit.interval for t, limit in zip(base, limits, strict=True)]
    return (True, 0.0, [t - now for t in after]), after


def render(names: Sequence[str], limits: Sequence[RateLimit], levels: Sequence[float]) -> ResponseHeaders:
    states = ", ".join([_state(names[i], limits[i], levels[i]) for i in range(len(names))])
    return (
        (b"ratelimit-policy", _policy_header(tuple(names), tuple(limits))),
        (b"ratelimit", states.encode()),
    )


def _state(name: str, limit: RateLimit, level: float) -> str:
    """`"client";r=42;t=17`: requests left now, seconds until the whole allowance is back."""
    remaining = math.floor((limit.tolerance - level) / limit.interval + _EPSILON)
    return (
        f'"{name}";r={remaining if remaining > 0 else 0};t={math.ceil(level - _EPSILON) if level > 0 else 0}'
    )


@functools.lru_cache(maxsize=4096)
def _policy_header(names: tuple[str, ...], limits: tuple[RateLimit, ...]) -> bytes:
    """`"client";q=100;w=60, "route";q=3;w=60`: the same for every request under these limits."""
    items = []
    for name, limit in zip(names, limits, strict=True):
        window = int(limit.window) if limit.window == int(limit.window) else limit.window
        items.append(f'"{name}";q={limit.requests};w={window}')
    return ", ".join(items).encode()


_CLIENT = ("client",)
_ROUTE = ("route",)
_BOTH = ("client", "route")


class RateLimiter:
    def __init__(
        self,
        backend: LimitBackend,
        client_limit: Callable[[str], Awaitable[RateLimit | None]],
        fail_open: bool = False,
    ) -> None:
        self.backend = backend
        self.client_limit = client_limit
        self.fail_open = fail_open

    async def check(self, identity: Identity, route: Route) -> ResponseHeaders:
        """The response headers for an admitted request; raises RateLimited (429) or, when the
        backend is down and the mode is fail_closed, RateLimitUnavailable (503)."""
        client_id = identity.client_id
        if client_id is None:
            return ()
        client_limit = await self.client_limit(client_id)
        route_limit = route.rate_limit
        # `{client}` is a Redis Cluster hash tag: both keys of a request live on one shard.
        if client_limit is None:
            if route_limit is None:
                return ()
            names, keys, limits = _ROUTE, [f"{{{client_id}}}:route:{route.id}"], [route_limit]
        elif route_limit is None:
            names, keys, limits = _CLIENT, [f"{{{client_id}}}:client"], [client_limit]
        else:
            names = _BOTH  # type: ignore[assignment]
            keys = [f"{{{client_id}}}:client", f"{{{client_id}}}:route:{route.id}"]
            limits = [client_limit, route_limit]
        try:
            admitted, retry, levels = await self.backend.hit(keys, limits)
        except BackendDown:
            if self.fail_open:
                return ()
            raise RateLimitUnavailable() from None
        headers = render(names, limits, levels)
        if not admitted:
            raise RateLimited(max(1, math.ceil(retry - _EPSILON)), headers)
        return headers

    async def applies(self, identity: Identity, route: Route) -> bool:
        """Whether a limit counts this client's requests to this route (`check` has work to do)."""
        client_id = identity.client_id
        if client_id is None:
            return False
        return route.rate_limit is not None or await self.client_limit(client_id) is not None

    def readiness(self) -> dict[str, object]:
        """What /readyz reports about the backend (never its URL: it may hold a password)."""
        return {
            "backend": self.backend.name,
            "reachable": self.backend.reachable,
            "failureMode": "fail_open" if self.fail_open else "fail_closed",
        }


def open_limiter(
    backend_url: str,
    failure_mode: str,
    key_prefix: str,
    timeout: float,
    client_limit: Callable[[str], Awaitable[RateLimit | None]],
    workers: int = 1,
) -> RateLimiter:
    """The limiter `rate_limits:` in the config describes, for a gateway of `workers` processes."""
    backend: LimitBackend
    if backend_url == "local":
        from gateway.pipeline.ratelimit.local import LocalBackend, SharedBackend

        backend = LocalBackend() if workers == 1 else SharedBackend()
    else:
        from gateway.pipeline.ratelimit.redis import RedisBackend

        backend = RedisBackend(backend_url, key_prefix, timeout)
    return RateLimiter(backend, client_limit, fail_open=failure_mode == "fail_open")
