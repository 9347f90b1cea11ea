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

import math
import time
from dataclasses import dataclass
from hashlib import blake2s
from hmac import compare_digest
from typing import Any, Protocol

from gateway.cache import make_room
from gateway.errors import GatewayError, NotFound
from gateway.metrics import DECISION_CACHE, tallied
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.authn import AuthenticatorChain, Generations, Verified, bearer_credential
from gateway.pipeline.authz import Authorizer
from gateway.pipeline.mutate import Headers, Mutator, lines
from gateway.pipeline.ratelimit import RateLimiter, ResponseHeaders
from gateway.policy.loader import Policy
from gateway.policy.model import Route, Upstream
from gateway.policy.table import Match
from gateway.store import StoreError
from gateway.usage import Tally, UsageRecorder


@dataclass(slots=True)  # not frozen: made per request, and a frozen dataclass's __init__ costs 4x
class Granted:
    """A request that may pass, and what the next hop is told about it (read-only by convention)."""

    route: Route
    upstream: Upstream
    identity: Identity
    headers: Headers  # the identity headers of the mutate stage, signed X-Gateway-Identity included
    lines: bytes  # the same headers as HTTP/1.1 header lines, as the upstream client sends them
    decision: str  # the metrics' decision label: "allow" or "public"
    response_headers: ResponseHeaders = ()  # for the caller: RateLimit-Policy / RateLimit (issue 14)


@dataclass(slots=True)
class _Decided:
    key: tuple[bytes, str, str]  # its key in the memo (memo_key)
    route: Route  # the very object: a policy reload makes new ones
    identity: Identity
    generation: tuple[int, int]  # the client's and the grants' when it was decided
    epoch: int  # the Generations epoch at which `generation` was last found unchanged
    expires_at: float  # the credential's expiry (epoch seconds); math.inf when it has none
    until: float  # monotonic: the verification's own reuse bound (caches.credential_ttl)
    # What a hit returns (read-only by convention, so shared by the requests it answers), with
    # the identity headers for this route, method and path; None until the first hit builds them.
    granted: Granted | None = None
    # Monotonic: the first of `until` and the reuse deadline of the headers' signed token. Before
    # it, a hit is the dict lookup and the generation and expiry checks, nothing else.
    recheck: float = 0.0
    tally: Tally | None = None  # where the client's usage counts the hits (gateway.usage)


_LAST = "gateway.decide.last"  # the key of Remembered.granted's entry in a connection's scratch


def memo_key(authorization: bytes, method: str, path: str) -> tuple[bytes, str, str]:
    """The memo's key: a hash of the Authorization header as sent, never the credential itself.
    BLAKE2s because it is a cryptographic hash and the cheapest one hashlib has for ~100 bytes
    (0.74 µs against SHA-256's 1.1 µs, measured on this machine)."""
    return blake2s(authorization).digest(), method, path


class Remembered:
    """What `grant` decided for a credential on a route, method and path, so that the next such
    request is answered without authenticating, authorizing or looking up limits again.

    The rules are the stages' own caches' rules, held at once: an entry is used only while the
    client's and the grants' generations are those it was decided under (any change to the
    client, its keys or tokens, the grants, the signing keys, or a lost change feed moves them),
    before the credential's expiry, no longer than the verification it rests on may be reused
    (`caches.credential_ttl` from when it was verified), and for the same Route object (a reload
    makes new ones). It is keyed by a hash of the Authorization header, never the credential.
    What must happen on every request still does: the freshness check of the change feed (in
    `generation`), the usage count and the identity headers (mutate's, with their token's own
    reuse window); a client or route with a rate limit is not remembered, so its requests always
    reach the limiter. `maxsize` 0 switches it off.
    """

    def __init__(
        self,
        generations: Generations,
        mutate: Mutator,
        usage: UsageRecorder | None,
        maxsize: int = 100_000,
        ttl: float = 300.0,
    ) -> None:
        self.generations = generations
        self.mutate = mutate
        self.usage = usage
        self.maxsize = maxsize
        self.ttl = ttl
        self._entries: dict[tuple[bytes, str, str], _Decided] = {}
        # route id -> what every request to that public route is granted (grant_public)
        self.public: dict[str, Granted] = {}

    @property
    def enabled(self) -> bool:
        return self.maxsize > 0

    def granted(
        self,
        policy: Policy,
        route: Route,
        method: str,
        path: str,
        authorization: bytes,
        connection: dict[str, Any] | None = None,
    ) -> Granted | None:
        """The remembered answer for this request while it holds, counted in the client's usage;
        else None (then `grant`, which counts it).

        `connection` is the caller's connection's scratch space (the server's `gateway.connection`
        extension): it keeps the entry of the connection's last hit with that request's
        Authorization header, so that the next request on it with the same header, method and path
        (what a client on a keep-alive connection sends) finds its entry by a constant-time
        comparison rather than by hashing the header again. The header is kept there for no longer
        than the connection lives.

        The hot path of every warm authenticated request: each step here is ~1 % of its cost,
        which is why the checks are written out rather than called."""
        entry: _Decided
        last = connection.get(_LAST) if connection is not None else None
        if last is not None and last[1] == method and last[2] == path and compare_digest(last[0], authorization):
            entry = last[3]
        else:
            known = self._entries.get(memo_key(authorization, method, path))
            if known is None:
                return None
            entry = known
            if connection is not None:
                connection[_LAST] = (authorization, method, path, entry)
        now = time.monotonic()
        wall = time.time()
        generations = self.generations
        if (
            entry.route is not route
            or now >= entry.until
            or wall >= entry.expires_at
            or (
                # Nothing changed since the generation was last confirmed, and the feed is fresh:
                # no need to look it up (what fails here falls through to the lookup, which
                # raises StoreError for a stale feed).
                (generations.epoch != entry.epoch or now >= generations.fresh_until)
                and not self._confirm(entry)
            )
        ):
            # Never valid again: do not keep an old policy's routes alive. (The connection's entry
            # may already have been replaced in the memo by a newer one for the same key.)
            if self._entries.get(entry.key) is entry:
                del self._entries[entry.key]
            if connection is not None:
                connection.pop(_LAST, None)
            return None
        granted = entry.granted
        if granted is None or now >= entry.recheck:  # the first hit, or the token is due for renewal
            identity = entry.identity
            upstream = policy.upstreams[route.upstream]
            found = self.mutate.headers_until(identity, route, method, path, upstream.name)
            if found is None:
                return None  # the signature takes a thread: `grant` decides it again
            headers = found[0]
            granted = entry.granted = Granted(route, upstream, identity, headers, lines(headers), "allow")
            entry.recheck = min(entry.until, found[1])
        usage = self.usage
        if usage is not None:
            tally = entry.tally
            if tally is not None and tally.batch is usage.batch and wall < tally.until:
                tally.counts[0] += 1
            else:
                identity = entry.identity
                client_id = identity.client_id or ""  # remembered only with one (see remember)
                entry.tally = usage.tally(wall, client_id, route.id, identity.credential_id)
        return granted

    def _confirm(self, entry: _Decided) -> bool:
        """Whether the entry's generation still holds (raises StoreError when the feed is stale);
        if so, it is confirmed as of the current epoch."""
        generations = self.generations
        epoch = generations.epoch
        if generations.generation(entry.identity.client_id or "") != entry.generation:
            return False
        entry.epoch = epoch
        return True

    def remember(
        self, authorization: bytes, route: Route, method: str, path: str, verified: Verified, epoch: int
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
        key = memo_key(authorization, method, path)
        if key not in entries and len(entries) >= self.maxsize:
            make_room(entries, self.maxsize)
        expires_at = math.inf if verified.expires_at is None else verified.expires_at
        entries[key] = _Decided(
            key, route, verified.identity, generation, epoch, expires_at, verified.verified_at + self.ttl
        )


# A decision the memo answered counts as one the decision cache answered (the grants engine's
# hit), on the hot path as a plain increment (metrics.Tallied).
_DECISION_HIT = tallied(DECISION_CACHE.labels("hit"))


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
    if (
        len(authorization) == 1  # what grant_now looks up: one header, no access_token in the query
        and b"access_token=" not in query_string
        and remembered.enabled
        and not await stages.limits.applies(identity, route)
    ):
        remembered.remember(authorization[0], route, method, path, verified, epoch)
    return Granted(route, upstream, identity, headers, lines(headers), "allow", response_headers)


def grant_now(
    stages: Stages,
    policy: Policy,
    match: Match,
    method: str,
    path: str,
    authorization: list[bytes],
    query_string: bytes,
    connection: dict[str, Any] | None = None,
) -> Granted | None:
    """`grant` without a coroutine, for the requests that need no I/O: a public route, or a
    credential `Remembered` on this route, method and path whose identity headers need no thread.
    None: call `grant` (which also refuses what is malformed). `connection`: the caller's
    connection's scratch space, when the caller's connection is its own (the proxy's callers, not
    the forward-auth front proxies, whose connections carry many callers' requests)."""
    route = match.route
    if not route.auth:  # route.public, without a property call on the hot path
        return grant_public(stages, policy, match)
    # One Authorization header and no credential in the query: anything else is for `grant`,
    # which parses and refuses it.
    if len(authorization) != 1 or b"access_token=" in query_string:
        return None
    granted = stages.remembered.granted(policy, route, method, path, authorization[0], connection)
    if granted is None:
        return None
    if route.permission is not None:
        _DECISION_HIT.n += 1
    return granted


def grant_public(stages: Stages, policy: Policy, match: Match) -> Granted:
    """`grant` for an `auth: none` route, without a coroutine: nothing to look up or sign."""
    route = match.route
    upstream = policy.upstreams[route.upstream]
    public = stages.remembered.public
    granted = public.get(route.id)
    if granted is None or granted.route is not route or granted.upstream is not upstream:
        if len(public) >= 10_000:  # reloads can rename routes
            public.clear()
        headers = stages.mutate.anonymous(route)
        granted = public[route.id] = Granted(route, upstream, ANONYMOUS, headers, lines(headers), "public")
    return granted


def count(stages: Stages, identity: Identity, route: Route, allowed: bool) -> None:
    """The client's usage (issue 14): counted in memory, written in batches."""
    if stages.usage is not None and identity.client_id is not None:
        stages.usage.count(identity.client_id, route.id, allowed, identity.credential_id)
