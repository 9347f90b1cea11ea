"""The decision both front doors make: match route → authenticate → authorize → mutate.

The proxy (`gateway.proxy`) forwards what this grants; the forward-auth decision endpoint
(`gateway.decisions`) hands the same answer to a front proxy (nginx, Traefik, Caddy, Envoy). One
function, so the two can never decide differently: a stage added here (rate limits, say) applies
to both. Every refusal is a GatewayError (or StoreError, when the store cannot answer); nothing
here forwards anything.

It comes in two calls so that a front door knows the route before the credential is checked (the
route id labels the metrics of a refused request too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.errors import GatewayError, NotFound
from gateway.models import ANONYMOUS, Identity
from gateway.pipeline.authn import AuthenticatorChain, bearer_credential
from gateway.pipeline.authz import Authorizer
from gateway.pipeline.mutate import Headers, Mutator
from gateway.pipeline.ratelimit import RateLimiter, ResponseHeaders
from gateway.policy.loader import Policy
from gateway.policy.model import Route, Upstream
from gateway.policy.table import Match
from gateway.usage import UsageRecorder


class Stages(Protocol):
    """The stages of one worker (gateway.runtime.Runtime has them)."""

    authn: AuthenticatorChain
    authz: Authorizer
    mutate: Mutator

    @property
    def usage(self) -> UsageRecorder | None: ...

    @property
    def limits(self) -> RateLimiter: ...


@dataclass(frozen=True, slots=True)
class Granted:
    """A request that may pass, and what the next hop is told about it."""

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
        return grant_public(stages, policy, match, method, path)
    upstream = policy.upstreams[route.upstream]
    response_headers: ResponseHeaders = ()
    credential = bearer_credential(authorization, query_string)
    identity = await stages.authn.authenticate(credential, route.auth)
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
    return Granted(route, upstream, identity, headers, "allow", response_headers)


def grant_public(stages: Stages, policy: Policy, match: Match, method: str, path: str) -> Granted:
    """`grant` for an `auth: none` route, without a coroutine: nothing to look up or sign."""
    route = match.route
    upstream = policy.upstreams[route.upstream]
    headers = stages.mutate.headers(ANONYMOUS, route, method, path, upstream.name)
    return Granted(route, upstream, ANONYMOUS, headers, "public")


def count(stages: Stages, identity: Identity, route: Route, allowed: bool) -> None:
    """The client's usage (issue 14): counted in memory, written in batches."""
    if stages.usage is not None and identity.client_id is not None:
        stages.usage.count(identity.client_id, route.id, allowed, identity.credential_id)
