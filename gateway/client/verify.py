"""Verifying what the gateway signs, in upstream services (contract §11).

    verifier = TokenVerifier("https://gw.example.com")             # the gateway's public_url
    claims = verifier.verify(token)                                 # a gateway access token for
                                                                    # the gateway's own audience
    claims = verifier.verify(token, audience="billing")             # ... or for `billing`
    claims = await verifier.averify(header, typ=IDENTITY, audience="documents")

    app = GatewayIdentityMiddleware(app, issuer="https://gw.example.com", audience="documents")

Nothing is trusted by default that was meant for someone else (issue 9, defect 5): an access
token's `aud` must be the one asked for, the gateway's `public_url` when none is; an identity
token needs the audience named (the upstream's name in the policy; ValueError without it); the
middleware also checks the token's signed `method` and `path` against the request it received.

Keys come from `<issuer>/.well-known/jwks.json`, cached for `cache_ttl` seconds and fetched again
on an unknown `kid` at most once per `refresh_interval`, so a flood of forged kids cannot turn
into a flood of requests to the gateway. Algorithms are bound to each key's own `alg`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx
import jwt

ACCESS_TOKEN = "at+jwt"
IDENTITY = "gateway-identity+jwt"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class VerificationError(Exception):
    """The token is not one the gateway issued for this use. The message says why, briefly."""


class TokenVerifier:
    def __init__(
        self,
        issuer: str,
        jwks_url: str | None = None,
        cache_ttl: float = 300.0,
        refresh_interval: float = 30.0,
        leeway: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.jwks_url = jwks_url or f"{self.issuer}/.well-known/jwks.json"
        self.cache_ttl = cache_ttl
        self.refresh_interval = refresh_interval
        self.leeway = leeway
        self._transport = transport
        self._async_transport = async_transport
        self._keys: dict[str, tuple[str, Any]] = {}
        self._fetched = 0.0
        self._lock = threading.Lock()

    # --- keys ----------------------------------------------------------------------------

    def _install(self, document: Any) -> None:
        keys: dict[str, tuple[str, Any]] = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            kid, alg = jwk.get("kid"), jwk.get("alg")
            if isinstance(kid, str) and alg in ("EdDSA", "ES256", "RS256"):
                keys[kid] = (alg, jwt.get_algorithm_by_name(alg).from_jwk(json.dumps(jwk)))
        with self._lock:
            self._keys, self._fetched = keys, time.monotonic()

    def _due(self, kid: str) -> bool:
        age = time.monotonic() - self._fetched
        return age > self.cache_ttl or (kid not in self._keys and age > self.refresh_interval)

    def _fetch(self) -> None:
        self._attempted()
        with httpx.Client(transport=self._transport, timeout=5.0) as http:
            response = http.get(self.jwks_url)
        response.raise_for_status()
        self._install(response.json())

    async def _afetch(self) -> None:
        self._attempted()
        async with httpx.AsyncClient(transport=self._async_transport, timeout=5.0) as http:
            response = await http.get(self.jwks_url)
        response.raise_for_status()
        self._install(response.json())

    def _attempted(self) -> None:
        # A failed fetch waits `refresh_interval` before the next try (keeping the old keys), so
        # a gateway that is down is not asked again on every request.
        with self._lock:
            self._fetched = max(self._fetched, time.monotonic() - self.cache_ttl + self.refresh_interval)

    # --- verification ----------------------------------------------------------------------

    def _kid(self, token: str) -> str:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise VerificationError("malformed token") from None
        if not isinstance(kid, str):
            raise VerificationError("the token has no kid")
        return kid

    def _check(self, token: str, kid: str, typ: str, audience: str) -> dict[str, Any]:
        found = self._keys.get(kid)
        if found is None:
            raise VerificationError("signed by a key the gateway does not publish")
        alg, key = found
        header = jwt.get_unverified_header(token)
        if header.get("alg") != alg or str(header.get("typ", "")).lower() != typ or "crit" in header:
            raise VerificationError("unexpected token type or algorithm")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=audience,
                options={"require": ["exp", "iat", "sub", "aud"]},
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise VerificationError(f"invalid token: {type(exc).__name__}") from None
        return claims

    def _audience(self, typ: str, audience: str | None) -> str:
        if audience:
            return audience
        if typ == IDENTITY:
            raise ValueError(
                "audience is required to verify X-Gateway-Identity: the upstream's name in the gateway's policy"
            )
        return self.issuer  # gateway tokens are minted for public_url unless asked otherwise

    def verify(self, token: str, typ: str = ACCESS_TOKEN, audience: str | None = None) -> dict[str, Any]:
        audience = self._audience(typ, audience)
        kid = self._kid(token)
        if self._due(kid):
            try:
                self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise VerificationError(
                        f"cannot fetch the gateway's keys: {type(exc).__name__}"
                    ) from None
        return self._check(token, kid, typ, audience)

    async def averify(
        self, token: str, typ: str = ACCESS_TOKEN, audience: str | None = None
    ) -> dict[str, Any]:
        audience = self._audience(typ, audience)
        kid = self._kid(token)
        if self._due(kid):
            try:
                await self._afetch()
            except (httpx.HTTPError, ValueError) as exc:
                if not self._keys:
                    raise VerificationError(
                        f"cannot fetch the gateway's keys: {type(exc).__name__}"
                    ) from None
        return self._check(token, kid, typ, audience)


_verifiers: dict[str, TokenVerifier] = {}


def verify_token(
    token: str, issuer: str, typ: str = ACCESS_TOKEN, audience: str | None = None
) -> dict[str, Any]:
    """Verify a gateway token (or, with typ=IDENTITY, an X-Gateway-Identity JWT) and return its
    claims. Raises VerificationError. `audience`: the token's expected `aud` (default: the
    issuer, for access tokens; required for identity tokens). Keys are cached per issuer for the
    life of the process."""
    verifier = _verifiers.get(issuer)
    if verifier is None:
        verifier = _verifiers[issuer] = TokenVerifier(issuer)
    return verifier.verify(token, typ=typ, audience=audience)


class GatewayIdentityMiddleware:
    """ASGI middleware (Starlette or any ASGI app) for an upstream behind the gateway: requires a
        valid X-Gateway-Identity for `audience` (the upstream's name in the gateway's policy) and puts
        its claims in `scope["gateway_identity"]` (Starlette: `request.scope["gateway_identity"]`; the
    ASGI `state` dict is the lifespan's, which frameworks copy per request).
        Anything else is answered 401 before the app sees it. `exempt` paths (health checks) pass.

    The token's signed `method` and `path` must be this request's, so a token seen once (a log,
    a proxy) cannot be replayed on another endpoint within its minute. The gateway signs the path
    it authorized; when the upstream's config in the policy has `strip_prefix` or a URL path,
    give them here too (`strip_prefix`, `base_path`) so the path received can be compared."""

    def __init__(
        self,
        app: ASGIApp,
        issuer: str,
        audience: str,
        exempt: tuple[str, ...] = (),
        verifier: TokenVerifier | None = None,
        strip_prefix: str = "",
        base_path: str = "",
    ) -> None:
        if not audience:
            raise ValueError("audience is required: the upstream's name in the gateway's policy")
        self.app = app
        self.audience = audience
        self.exempt = exempt
        self.verifier = verifier or TokenVerifier(issuer)
        self.strip_prefix = strip_prefix.rstrip("/")
        self.base_path = base_path.rstrip("/")

    def _expected_path(self, signed: str) -> str:
        """Where the gateway sends a request it authorized for `signed` (its upstream rules)."""
        prefix = self.strip_prefix
        if prefix and (signed == prefix or signed.startswith(prefix + "/")):
            signed = signed[len(prefix) :] or "/"
        return self.base_path + signed

    def _check_request(self, scope: Scope, claims: dict[str, Any]) -> None:
        raw = scope.get("raw_path")
        received = raw.split(b"?", 1)[0].decode("latin-1") if raw else scope.get("path", "")
        signed_path, signed_method = claims.get("path"), claims.get("method")
        if (
            not isinstance(signed_path, str)
            or signed_method != scope.get("method")
            or self._expected_path(signed_path) != received
        ):
            raise VerificationError("the identity token was signed for another request")

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exempt:
            await self.app(scope, receive, send)
            return
        values = [v for k, v in scope["headers"] if k == b"x-gateway-identity"]
        try:
            if len(values) != 1:
                raise VerificationError("expected one X-Gateway-Identity header")
            claims = await self.verifier.averify(
                values[0].decode("latin-1"), typ=IDENTITY, audience=self.audience
            )
            self._check_request(scope, claims)
        except VerificationError as exc:
            body = json.dumps({"error": "invalid_token", "error_description": str(exc)}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        scope["gateway_identity"] = claims
        await self.app(scope, receive, send)
