"""POST /oauth/token (RFC 6749 §4.4, RFC 7523, RFC 8693).

Grants: `client_credentials` (client authenticated by secret or private_key_jwt),
`urn:ietf:params:oauth:grant-type:jwt-bearer` (a client-signed JWT of contract §2, or a trusted
external token, as `assertion` or as `Authorization: Bearer`) and
`urn:ietf:params:oauth:grant-type:token-exchange` (a trusted external token, oauth/exchange.py).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    UnsupportedGrantType,
)
from gateway.metrics import TOKENS_ISSUED
from gateway.oauth import exchange
from gateway.oauth.clients import ClientRequests
from gateway.oauth.params import NO_STORE, read_params
from gateway.presented import Presented
from gateway.runtime import Runtime

CLIENT_CREDENTIALS = "client_credentials"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_GRANT_LABELS = {
    CLIENT_CREDENTIALS: "client_credentials",
    JWT_BEARER: "jwt_bearer",
    TOKEN_EXCHANGE: "token_exchange",
}


class TokenEndpoint:
    def __init__(self, runtime: Runtime, requests: ClientRequests) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.identity = runtime.identity
        self.tokens = runtime.identity.tokens
        self.client_jwts = runtime.identity.client_jwt
        self.requests = requests

    def scopes_and_audience(
        self, params: dict[str, str], allowed_scopes: tuple[str, ...], allowed_audiences: tuple[str, ...]
    ) -> tuple[tuple[str, ...], str]:
        requested = params.get("scope")
        if requested is None:
            scopes = allowed_scopes
        else:
            scopes = tuple(dict.fromkeys(requested.split()))
            outside = [s for s in scopes if s not in allowed_scopes]
            if outside:
                raise InvalidScope(f"scope {outside[0]} is not allowed for this client")
        audience, resource = params.get("audience"), params.get("resource")
        if audience is not None and resource is not None and audience != resource:
            raise InvalidRequest("audience and resource disagree")
        target = audience or resource or self.config.public_url
        if target != self.config.public_url and target not in allowed_audiences:
            raise InvalidTarget(f"audience {target} is not allowed for this client")
        return scopes, target

    async def token(self, request: Request) -> Response:
        params = await read_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type: required")
        if grant_type == CLIENT_CREDENTIALS:
            found = await self.requests.authenticate(request, params, required=True)
            assert found is not None
            client, credential_id = found.client, found.credential_id
        elif grant_type == JWT_BEARER:
            client, credential_id = await self.jwt_bearer(request, params)
        elif grant_type == TOKEN_EXCHANGE:
            client, credential_id = await self.token_exchange(request, params)
        else:
            raise UnsupportedGrantType(f"grant_type {grant_type} is not supported")
        scopes, audience = self.scopes_and_audience(params, client.scopes, client.audiences)
        access_token, lifetime = self.tokens.issue(client, scopes, audience, credential_id)
        TOKENS_ISSUED.labels(_GRANT_LABELS[grant_type]).inc()
        if credential_id:
            self.runtime.usage.used(credential_id)  # a client secret's last use (issue 14)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": " ".join(scopes),
                # RFC 8693 §2.2.1: what kind of token the exchange gave.
                **({"issued_token_type": exchange.ACCESS_TOKEN_TYPE} if grant_type == TOKEN_EXCHANGE else {}),
            },
            headers=NO_STORE,
        )

    async def token_exchange(self, request: Request, params: dict[str, str]) -> tuple[Any, str]:
        authorization = self.requests.authorization_of(request)
        token = exchange.subject_token(
            params,
            client_authentication=authorization is not None
            or any(p in params for p in ("client_secret", "client_assertion", "client_assertion_type")),
        )
        return await self.external_grant(request, Presented(token))

    async def external_grant(self, request: Request, presented: Presented) -> tuple[Any, str]:
        """A trusted external token (exchange or jwt-bearer), behind the throttle: failures
        count against the address."""
        address = self.requests.address_of(request)
        self.requests.check_throttle(address, None)
        try:
            found = await exchange.external_client(self.identity.oidc, self.identity.directory, presented)
        except InvalidGrant:
            self.requests.throttle.failed(address, None)
            raise
        if found is None:
            self.requests.throttle.failed(address, None)
            raise InvalidGrant("the token is not from a trusted issuer")
        return found

    async def jwt_bearer(self, request: Request, params: dict[str, str]) -> tuple[Any, str]:
        """The assertion is a client-signed JWT (contract §2). Anything else, a gateway token or
        an identity JWT included, is invalid_grant: no self-renewal of tokens."""
        assertion = params.get("assertion")
        authorization = self.requests.authorization_of(request)
        if authorization and authorization[:7].lower() == "bearer ":
            if assertion is not None:
                raise InvalidRequest("send the assertion once")
            assertion = authorization[7:].strip()
        elif authorization is not None or "client_secret" in params or "client_assertion" in params:
            raise InvalidRequest("the jwt-bearer grant authenticates the client by its assertion alone")
        if not assertion:
            raise InvalidRequest("assertion: required")
        presented = Presented(assertion)
        address = self.requests.address_of(request)
        sub = presented.jwt.claims.get("sub") if presented.jwt else None
        claimed = sub if isinstance(sub, str) else None
        self.requests.check_throttle(address, claimed)
        try:
            verified = await self.client_jwts.authenticate(presented)
        except InvalidToken as exc:
            self.requests.throttle.failed(address, claimed)
            raise InvalidGrant(exc.description) from None
        if verified is None:
            # Not a client-signed JWT of ours: a trusted external token (RFC 7523 with a
            # federated issuer, contract §5), or nothing this grant accepts.
            if params.get("client_id") is not None:
                raise InvalidRequest("client_id: the external token names the client")
            return await self.external_grant(request, presented)
        client_id = verified.identity.client_id
        assert client_id is not None and presented.jwt is not None
        if params.get("client_id", client_id) != client_id:
            raise InvalidRequest("client_id does not match the assertion")
        try:
            await self.requests.clients.use_once(client_id, presented.jwt.claims)
        except InvalidClient as exc:
            raise InvalidGrant(exc.description) from None
        client = await self.identity.directory.client(client_id)
        if client is None or client.disabled:
            raise InvalidGrant("the client is disabled or deleted")
        return client, verified.identity.credential_id or ""
