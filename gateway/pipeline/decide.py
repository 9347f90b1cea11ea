"""The decision both front doors make: match route → authenticate → authorize → mutate.

The proxy (`gateway.proxy`) forwards what this grants; the forward-auth decision endpoint
(`gateway.decisions`) hands the same answer to a front proxy (nginx, Traefik, Caddy, Envoy). One
function, so the two can never decide differently: a stage added here (rate limits, say) applies
to both. Every refusal is a GatewayError (or StoreError, when the store cannot answer); nothing
here forwards anything.

It comes in two calls so that a front door knows the route before the credential is checked (the
route id labels the metrics of a refused request too). A front door first tries `grant_now`,
which answers without a coroutine the requests that need no I/O: public routes, and a credential
seen on the same route, method and path before (`Remembered`); then `grant`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from gateway.cache import make_room
from gateway.crypto import fingerprint
from gateway.errors import GatewayError, NotFound
from gateway.metrics import DECISION_CACHE
from gateway.metrics import count as count_metric
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.authn import AuthenticatorChain, Generations, Verified, bearer_credential
from gateway.pipeline.authz import Authorizer
from gateway.pipeline.mutate import Headers, Mutator
from gateway.pipeline.ratelimit import RateLimiter, ResponseHeaders
from gateway.policy.loader import Policy
from gateway.policy.model import Route, Upstream
from gateway.policy.table import Match
from gateway.store import StoreError
from gateway.usage import UsageRecorder


@dataclass(slots=True)
class _Decided:
    route: Route  # the very object: a policy reload makes new ones
    identity: Identity
    generation: tuple[int, int]  # the client's and the grants' when it was decided
    expires_at: float | None  # the credential's expiry (epoch seconds)
    until: float  # monotonic: the verification's own reuse bound (caches.credential_ttl)
    # The identity headers for this route, method and path (mutate's), and until when their
    # signed token may be reused (monotonic); refreshed from mutate once that has passed.
    headers: Headers = field(default_factory=list)
    headers_until: float = 0.0


class Remembered:
    """What `grant` decided for a credential on a route, method and path, so that the next such
    request is answered without authenticating, authorizing or looking up limits again.

    The rules are the stages' own caches' rules, held at once: an entry is used only while the
    client's and the grants' generations are those it was decided under (any change to the
    client, its keys or tokens, the grants, the signing keys, or a lost change feed moves them),
    before the credential's expiry, no longer than the verification it rests on may be reused
    (`caches.credential_ttl` from when it was verified), and for the same Route object (a reload
    makes new ones). It is keyed by a hash of the credential, never the credential. What must
    happen on every request still does: the freshness check of the change feed (in
    `generation`), the usage count and the identity headers (mutate's, with their token's own
    reuse window); a client or route with a rate limit is not remembered, so its requests always
    reach the limiter. `maxsize` 0 switches it off.
    """

    def __init__(self, generations: Generations, maxsize: int = 100_000, ttl: float = 300.0) -> None:
        self.generations = generations
        self.maxsize = maxsize
        self.ttl = ttl
        self._entries: dict[tuple[bytes, str, str], _Decided] = {}

    @property
    def enabled(self) -> bool:
        return self.maxsize > 0

    def lookup(self, credential: str, route: Route, method: str, path: str, now: float) -> _Decided | None:
        """The entry for this request while it holds (`now`: time.monotonic()), else None."""
        key = (fingerprint(credential), method, path)
        entry = self._entries.get(key)
        if entry is None:
            return None
        if (
            entry.route is not route
            or now >= entry.until
            or (entry.expires_at is not None and time.time() >= entry.expires_at)
            or self.generations.generation(entry.identity.client_id or "") != entry.generation
        ):
            del self._entries[key]  # never valid again: do not keep an old policy's routes alive
            return None
        return entry

    def remember(
        self, credential: str, route: Route, method: str, path: str, verified: Verified, epoch: int
    ) -> None:
        """After a full decision that began at `epoch`: kept only when no change landed since."""
        client_id = verified.identity.client_id
        if client_id is None or not self.enabled or self.generations.epoch != epoch:
            return
        try:
            generation = self.generations.generation(client_id)
        except StoreError:  # the feed went stale since: the request was decided, just not kept
            return
        entries = self._entries
        key = (fingerprint(credential), method, path)
        if key not in entries and len(entries) >= self.maxsize:
            make_room(entries, self.maxsize)
        entries[key] = _Decided(
            route, verified.identity, generation, verified.expires_at, verified.verified_at + self.ttl
        )


_DECISION_HIT = DECISION_CACHE.labels("hit")


class Stages(Protocol):
    """The stages of one worker (gateway.runtime.Runtime has them)."""

    authn: AuthenticatorChain
    authz: Authorizer
    mutate: Mutator
    remembered: Remembered

    @property
    def usage(self) -> UsageRecorder | None: ...

    @property
    def limits(self) -> RateLimiter: ...


@dataclass(slots=True)  # not frozen: made per request, and a frozen dataclass's __init__ costs 4x
class Granted:
    """A request that may pass, and what the next hop is told about it (read-only by convention)."""

    route: Route
    upstream: Upstream
    identity: Identity
    headers: Headers  # the identity headers of the mutate stage, signed X-Gateway-Identity included
    decision: str  # the metrics' decision label: "allow" or "public"
    response_headers: ResponseHeaders = ()  # for the caller: RateLimit-Policy / RateLimit (issue 14)


def match_route(policy: Policy, method: str, segments: list[str]) -> Match:
    """The route for a canonical path (gateway.paths.canonicalize); NotFound when none matches."""
    match = policy.table.match(method, segments)
    if match is None:
        raise NotFound()
    return match


async def grant(
    stages: Stages,
    policy: Policy,
    match: Match,
    method: str,
    path: str,
    authorization: list[bytes],
    query_string: bytes,
) -> Granted:
    """Authenticate, authorize and mutate one request to the matched route.

    `path` is the canonical path (the one the upstream receives and the signed identity names);
    `authorization` the request's Authorization header values; `query_string` is only looked at
    for a credential in it (refused: URLs end up in logs).
    """
    route = match.route
    if route.public:
        return grant_public(stages, policy, match)
    upstream = policy.upstreams[route.upstream]
    response_headers: ResponseHeaders = ()
    credential = bearer_credential(authorization, query_string)
    epoch = stages.remembered.generations.epoch
    verified = await stages.authn.verify(credential, route.auth)
    identity = verified.identity
    try:
        await stages.authz.authorize(route, identity, match.params)
        # Counted after authentication and authorization: nobody spends another's budget.
        response_headers = await stages.limits.check(identity, route)
    except GatewayError as exc:
        count(stages, identity, route, allowed=False)
        exc.client_id = identity.client_id
        raise
    count(stages, identity, route, allowed=True)
    headers = await stages.mutate.headers_async(identity, route, method, path, upstream.name)
    remembered = stages.remembered
    if credential is not None and remembered.enabled and not await stages.limits.applies(identity, route):
        remembered.remember(credential, route, method, path, verified, epoch)
    return Granted(route, upstream, identity, headers, "allow", response_headers)


def grant_now(
    stages: Stages,
    policy: Policy,
    match: Match,
    method: str,
    path: str,
    authorization: list[bytes],
    query_string: bytes,
) -> Granted | None:
    """`grant` without a coroutine, for the requests that need no I/O: a public route, or a
    credential `Remembered` on this route, method and path whose identity headers need no thread.
    None: call `grant`. Raises what `grant` raises for a malformed Authorization header."""
    route = match.route
    if route.public:
        return grant_public(stages, policy, match)
    credential = bearer_credential(authorization, query_string)
    if credential is None:
        return None
    now = time.monotonic()
    entry = stages.remembered.lookup(credential, route, method, path, now)
    if entry is None:
        return None
    identity = entry.identity
    upstream = policy.upstreams[route.upstream]
    if now >= entry.headers_until:  # the first time, or the signed token is due for renewal
        found = stages.mutate.headers_until(identity, route, method, path, upstream.name)
        if found is None:
            return None  # `grant` decides it again (and counts it once)
        entry.headers, entry.headers_until = found
    headers = entry.headers.copy()
    if route.permission is not None:
        count_metric(_DECISION_HIT)  # a decision the cache answered, as the grants engine counts it
    count(stages, identity, route, allowed=True)
    return Granted(route, upstream, identity, headers, "allow")


def grant_public(stages: Stages, policy: Policy, match: Match) -> Granted:
    """`grant` for an `auth: none` route, without a coroutine: nothing to look up or sign."""
    route = match.route
    upstream = policy.upstreams[route.upstream]
    headers = stages.mutate.anonymous(route)
    return Granted(route, upstream, ANONYMOUS, headers, "public")


def count(stages: Stages, identity: Identity, route: Route, allowed: bool) -> None:
    """The client's usage (issue 14): counted in memory, written in batches."""
    if stages.usage is not None and identity.client_id is not None:
        stages.usage.count(identity.client_id, route.id, allowed, identity.credential_id)
