"""The scenario registry: what a scenario is, and the context its setup function gets.

A scenario is an id, the id of its baseline, the suite it runs in, and a function that gets a
`Context` and returns a `Target` (the URL wrk hammers, the headers, which service's CPU counts).
The function starts what it needs through the context (services are shared and started once)
and raises `Skip("needs issue N")` when the gateway lacks a feature. Scenarios of one suite run
interleaved, round after round, so each ratio compares runs made minutes apart at most.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.services import (
    GatewaySpec,
    Service,
    Skip,
    Stack,
    gateway_commands,
    http_json,
    start_caddy_proxy,
    start_gateway,
    start_haproxy,
    start_nginx_proxy,
    start_traefik_proxy,
    start_upstream,
)


@dataclass
class Target:
    url: str
    sut: Service  # the system under test: the CPU time of its process group is counted
    also: list[Service] = field(default_factory=list)  # more of the system (a front proxy's gateway)
    headers: dict[str, str] = field(default_factory=dict)
    tokens_file: Path | None = None  # one Authorization value per line, one per request in turn
    # Credentials never to be sent twice (cold caches): every run takes the next unused slice of
    # `fresh_pool` (sized for `fresh_rate` req/s); a run that exhausts it reuses, and says so.
    fresh_pool: list[str] | None = None
    fresh_rate: int = 2500
    fresh_offset: int = 0
    fresh_reused: bool = False
    # With fresh_pool: every run takes the next `pool_slice` credentials and cycles over them
    # (each is new to the gateway at the run's start, then sent again and again).
    pool_slice: int = 0
    method: str = "GET"
    body: str | None = None
    rate: int = 0  # offered requests/s; 0 = saturate
    connections: int | None = None  # None: the run's default
    expect_status: int = 200
    note: str = ""


@dataclass(frozen=True)
class Scenario:
    id: str
    baseline: str | None
    suite: str
    description: str
    target: Callable[[Context], Target]
    quick: bool = True  # part of `scripts/bench --quick`


REGISTRY: dict[str, Scenario] = {}

# Suites run in this order; within a suite, scenarios run in registration order.
SUITES = ["proxy", "slow", "rate", "auth", "forward_auth", "routes", "workers", "keys", "keys_pg"]


def scenario(id: str, baseline: str | None, suite: str, description: str,
             quick: bool = True) -> Callable[[Callable[[Context], Target]], Callable[[Context], Target]]:
    """Register a scenario: decorate its setup function (Context → Target)."""
    if suite not in SUITES:
        raise ValueError(f"scenario {id}: unknown suite {suite!r} (add it to SUITES)")

    def register(fn: Callable[[Context], Target]) -> Callable[[Context], Target]:
        if id in REGISTRY:
            raise ValueError(f"scenario {id} registered twice")
        REGISTRY[id] = Scenario(id, baseline, suite, description, fn, quick)
        return fn

    return register


# Gateway features that arrive with later issues: (issue, probe). A probe gets the context, so it
# may ask a running gateway (an endpoint that answers 404 "no such endpoint" is not there yet).
@functools.cache
def _commands() -> frozenset[str]:
    return frozenset(gateway_commands())


def _endpoint_exists(ctx: Context, method: str, url: str) -> bool:
    status, answer = http_json(method, url, form={} if method == "POST" else None)
    return not (status == 404 and isinstance(answer, dict) and answer.get("error") == "not_found")


FEATURES: dict[str, tuple[int, Callable[[Context], bool]]] = {
    # issue 3: service clients, access keys, grants, and the CLI that manages them (contract §10)
    "identity": (3, lambda ctx: {"init", "clients", "keys", "roles", "records"} <= _commands()),
    # issue 3: the admin API (contract §7)
    "admin_api": (3, lambda ctx: _endpoint_exists(ctx, "GET", ctx.gateway().urls["admin"] + "/v1/clients")),
    # issue 4: the token endpoint and gateway-issued tokens (contract §3)
    "tokens": (4, lambda ctx: _endpoint_exists(ctx, "POST", ctx.gateway().urls["proxy"] + "/oauth/token")),
    # issue 11: trusted external identities (contract §5), managed with `gateway identities`
    "trusted_identities": (11, lambda ctx: "identities" in _commands()),
}


class Context:
    """What a scenario's setup function works with. Services are started on first use and shared
    by every scenario of the run; `cache` keeps setup results (clients, tokens) across calls."""

    def __init__(self, stack: Stack, settings: Any) -> None:
        self.stack = stack
        self.settings = settings
        self.workdir = stack.workdir
        self.cache: dict[str, Any] = {}
        self._services: dict[str, Service] = {}
        self._failed: dict[str, Exception] = {}  # a service that failed to start is not retried
        self._transient: set[str] = set()
        self._probed: dict[str, bool] = {}

    def require(self, *features: str) -> None:
        for name in features:
            issue, probe = FEATURES[name]
            if name not in self._probed:
                self._probed[name] = probe(self)
            if not self._probed[name]:
                raise Skip(f"needs issue {issue} ({name.replace('_', ' ')})")

    def _get(self, key: str, start: Callable[[], Service], transient: bool = False) -> Service:
        service = self._services.get(key)
        if service is None:
            if key in self._failed:
                raise self._failed[key]
            if transient:
                self._transient.add(key)
            try:
                service = self._services[key] = start()
            except Exception as exc:
                self._failed[key] = exc
                raise
        return service

    def upstream(self) -> Service:
        return self._get("upstream", lambda: start_upstream(self.stack))

    def nginx_proxy(self) -> Service:
        return self._get("nginx_proxy", lambda: start_nginx_proxy(self.stack, self.upstream()))

    def haproxy(self) -> Service:
        return self._get("haproxy", lambda: start_haproxy(self.stack, self.upstream()))

    def traefik_proxy(self) -> Service:
        return self._get("traefik_proxy", lambda: start_traefik_proxy(self.stack, self.upstream()))

    def caddy_proxy(self) -> Service:
        return self._get("caddy_proxy", lambda: start_caddy_proxy(self.stack, self.upstream()))

    def gateway(self, spec: GatewaySpec | None = None) -> Service:
        """A gateway on the SUT core. The default one (1 worker, the bench policy) stays up for
        the whole run; others (big route tables, several workers) are stopped after their suite."""
        spec = spec or GatewaySpec()
        transient = spec != GatewaySpec()
        return self._get(spec.key, lambda: start_gateway(self.stack, self.upstream(), spec), transient)

    def release_transient(self) -> None:
        """Stop the services only one suite needed, so they neither idle on the SUT core nor hold
        memory while the next suite is measured."""
        for key in sorted(self._transient):
            self._failed.pop(key, None)
            service = self._services.pop(key, None)
            if service is not None:
                self.stack.stop(service)
            for cached in [k for k in self.cache if k.startswith(key + ":")]:
                del self.cache[cached]
        self._transient.clear()
