"""Rate-limit scenarios (issue 14): what a client rate limit adds to an authenticated request.

`ratelimit_local` and `ratelimit_redis` send the `access_key` request (static key, a permission
checked against grants, caches warm) as a client whose own rate limit is far above what the run
can reach (10^9 per second), so every request is counted and admitted: the difference to
`access_key` is the limiter's cost. Local: a dict lookup and a few float operations in the worker
(target ≤ 5 µs per request). Redis: one EVALSHA round trip to the machine's Redis (127.0.0.1:6379,
keys under a prefix of the run's own).

`python -m benchmarks.ratelimit` measures the stage alone, in process, without HTTP: µs per check
with the local backend and with Redis (the round trip).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from benchmarks.registry import Context, Target, scenario
from benchmarks.scenarios import bench_client
from benchmarks.services import PROTECTED_PATH, GatewaySpec, Service, Skip, run_gateway_cli

REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/0")
HUGE = "1000000000/1s"


def limited_client(ctx: Context, gateway: Service) -> str:
    """The bench client with a rate limit far above the run's reach (one more client update)."""
    cache_key = f"{gateway.name}:limited"
    if cache_key not in ctx.cache:
        client = bench_client(ctx, gateway)
        run_gateway_cli(gateway.info["config"], "clients", "update", client["client_id"], "--rate-limit", HUGE)
        ctx.cache[cache_key] = client["access_key"]
    key: str = ctx.cache[cache_key]
    return key


def _target(ctx: Context, spec: GatewaySpec) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway(spec)
    key = limited_client(ctx, gateway)
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway, headers={"Authorization": f"Bearer {key}"},
                  note="client rate limit 10^9/s: every request counted")


@scenario("ratelimit_local", "access_key", "auth", "access_key as a client with a rate limit, local backend")
def ratelimit_local(ctx: Context) -> Target:
    return _target(ctx, GatewaySpec(rate_limits="local"))


@scenario("ratelimit_redis", "access_key", "auth", "access_key as a client with a rate limit, Redis backend "
          "(one round trip to 127.0.0.1:6379)")
def ratelimit_redis(ctx: Context) -> Target:
    if not _redis_up():
        raise Skip("no Redis at 127.0.0.1:6379")
    return _target(ctx, GatewaySpec(rate_limits=REDIS_URL))


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(8).startswith(b"+PONG")
    except OSError:
        return False


async def _per_check(backend: Any, n: int, route_limit: bool = True) -> float:
    from gateway.models import Identity
    from gateway.pipeline.ratelimit import RateLimiter
    from gateway.policy.model import Route, parse_template
    from gateway.quota import RateLimit

    limit = RateLimit(1_000_000_000, 1.0)

    async def client_limit(client_id: str) -> RateLimit | None:
        return limit

    limiter = RateLimiter(backend, client_limit)
    identity = Identity(method="access_key", client_id="sc_bench")
    route = Route(
        "r", "", None, parse_template("/x"), "up", frozenset({"access_key"}), rate_limit=limit if route_limit else None
    )
    for _ in range(min(n, 1000)):
        await limiter.check(identity, route)
    started = time.perf_counter()
    for _ in range(n):
        await limiter.check(identity, route)
    return (time.perf_counter() - started) / n * 1e6


def _calibration(n: int = 1_000_000) -> float:
    """µs per dict lookup in a loop: on a quiet core ~0.03-0.05; a loaded machine shows it."""
    table = {"a": 1.0}
    started = time.perf_counter()
    for _ in range(n):
        table.get("a")
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    from gateway.pipeline.ratelimit.local import LocalBackend

    print(f"calibration: {_calibration():.3f} µs per dict lookup (scale the figures below by it)")
    print(f"local: {asyncio.run(_per_check(LocalBackend(), 200_000, False)):.2f} µs per check (client limit)")
    print(f"local: {asyncio.run(_per_check(LocalBackend(), 200_000)):.2f} µs per check (client + route limit)")
    if _redis_up():
        from gateway.pipeline.ratelimit.redis import RedisBackend

        async def redis_run() -> float:
            backend = RedisBackend(REDIS_URL, f"bench-micro-{os.getpid()}:", 1.0)
            try:
                return await _per_check(backend, 5_000)
            finally:
                await backend.close()

        print(f"redis: {asyncio.run(redis_run()):.1f} µs per check (one EVALSHA round trip, sequential)")


if __name__ == "__main__":
    main()
