"""Mutate: what the next hop is told about the caller, once authentication and authorization
have passed (contract §4, "What the upstream receives"; Oathkeeper calls this stage mutate).

The proxy adds these headers to the forwarded request; the forward-auth decision endpoint
returns them to the front proxy, so an upstream sees the same headers behind either front door.
Everything here is set by the gateway only, after the caller's own `X-Gateway-*` headers were
stripped.
"""

from __future__ import annotations

import math
from typing import Protocol

from gateway.models import ANONYMOUS, Identity
from gateway.policy.model import Route

Headers = list[tuple[bytes, bytes]]

#: Every header this stage may set: a front door that cannot drop a caller's `X-Gateway-*`
#: headers itself (Envoy behind the decision endpoint) is told which of these to remove.
NAMES = (
    b"x-gateway-auth-method",
    b"x-gateway-route",
    b"x-gateway-client-id",
    b"x-gateway-subject",
    b"x-gateway-tenant",
    b"x-gateway-scopes",
    b"x-gateway-identity",
)


def lines(headers: Headers) -> bytes:
    """Headers as HTTP/1.1 header lines: the upstream client adds them to the request head as
    they are, so a warm request's identity headers are encoded once, not per request."""
    return b"".join([b"%s: %s\r\n" % header for header in headers])


class IdentitySigner(Protocol):
    """Mints the signed `X-Gateway-Identity` token (gateway.identity.signing.IdentityHeaders)."""

    def token_until(
        self, identity: Identity, route: str, method: str, path: str, upstream: str
    ) -> tuple[str, float] | None: ...

    async def token_async(
        self, identity: Identity, route: str, method: str, path: str, upstream: str
    ) -> str: ...


class Mutator:
    """Builds the identity headers for one authorized request.

    Without a signer (a gateway with no identity services) no `X-Gateway-Identity` is added;
    such a gateway authenticates nobody, so only `auth: none` routes pass anyway.
    """

    def __init__(self, signer: IdentitySigner | None) -> None:
        self.signer = signer
        # (id of the identity, route id) -> (the identity, its headers for that route). Identities
        # are long-lived objects (the authenticators' caches hand out the same one), so this
        # saves rebuilding the same headers per request; holding the identity keeps its id unique.
        self._described_for: dict[tuple[int, str], tuple[Identity, Headers]] = {}
        self._anonymous: dict[str, Headers] = {}  # route id -> the headers of a public route's caller

    def anonymous(self, route: Route) -> Headers:
        """The headers of a public route's caller: the same two on every request."""
        return self._described(ANONYMOUS, route)

    def headers_until(
        self, identity: Identity, route: Route, method: str, path: str, audience: str
    ) -> tuple[Headers, float] | None:
        """The headers and until when (time.monotonic) they may be reused: the signed token's own
        reuse window (forever without one). None when the signature takes a thread (RSA): then
        `headers_async`. `audience` is the `aud` of the signed token: the upstream's name
        (contract §4)."""
        headers = self._described(identity, route)
        if self.signer is None or identity.client_id is None:
            return headers, math.inf
        found = self.signer.token_until(identity, route.id, method, path, audience)
        if found is None:
            return None
        headers.append((b"x-gateway-identity", found[0].encode()))
        return headers, found[1]

    async def headers_async(
        self, identity: Identity, route: Route, method: str, path: str, audience: str
    ) -> Headers:
        """The same headers, for the front doors: a slow (RSA) signature is made off the event loop."""
        found = self.headers_until(identity, route, method, path, audience)
        if found is not None:
            return found[0]
        headers = self._described(identity, route)
        if self.signer is not None:  # always: without a signer, headers_until needs no thread
            token = await self.signer.token_async(identity, route.id, method, path, audience)
            headers.append((b"x-gateway-identity", token.encode()))
        return headers

    def _described(self, identity: Identity, route: Route) -> Headers:
        if identity is ANONYMOUS:  # every request to a public route: the same two headers
            anonymous = self._anonymous.get(route.id)
            if anonymous is None:
                if len(self._anonymous) > 10_000:  # reloads can rename routes
                    self._anonymous.clear()
                anonymous = self._anonymous[route.id] = self._describe(identity, route)
            return anonymous.copy()
        key = (id(identity), route.id)
        cached = self._described_for.get(key)
        if cached is None or cached[0] is not identity:
            if len(self._described_for) >= 10_000:  # bounded: new identities, reloads renaming routes
                self._described_for.clear()
            cached = self._described_for[key] = (identity, self._describe(identity, route))
        return cached[1].copy()

    def _describe(self, identity: Identity, route: Route) -> Headers:
        headers: Headers = [
            (b"x-gateway-auth-method", identity.method.encode()),
            (b"x-gateway-route", route.id.encode()),
        ]
        if identity.client_id is not None:
            headers.append((b"x-gateway-client-id", identity.client_id.encode()))
        if identity.subject is not None:
            headers.append((b"x-gateway-subject", identity.subject.encode()))
        if identity.tenant is not None:
            headers.append((b"x-gateway-tenant", identity.tenant.encode()))
        if identity.identity_id is not None:  # the trusted identity an `oidc` caller matched
            headers.append((b"x-gateway-identity-id", identity.identity_id.encode()))
        if identity.method != "none":
            headers.append((b"x-gateway-scopes", " ".join(sorted(identity.scopes)).encode()))
        return headers
