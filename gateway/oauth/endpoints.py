"""POST /oauth/token (RFC 6749 §4.4, RFC 7523), /oauth/introspect (RFC 7662), /oauth/revoke
(RFC 7009) and the discovery documents (RFC 8414), under public_url's path.

Grants: `client_credentials` (client authenticated by secret or private_key_jwt),
`urn:ietf:params:oauth:grant-type:jwt-bearer` (a client-signed JWT of contract §2, or a trusted
external token, as `assertion` or as `Authorization: Bearer`) and
`urn:ietf:params:oauth:grant-type:token-exchange` (a trusted external token, oauth/exchange.py).
Every answer carries `Cache-Control: no-store`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway import jsonsafe
from gateway.errors import (
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    InvalidToken,
    TooManyRequests,
    UnsupportedGrantType,
)
from gateway.identity.tokens import TokenService
from gateway.metrics import TOKENS_ISSUED
from gateway.oauth import exchange
from gateway.oauth.throttle import Throttle
from gateway.pipeline.authn.client_auth import AuthenticatedClient, ClientAuthenticator
from gateway.pipeline.authn.client_jwt import ClientJwtAuthenticator
from gateway.pipeline.forward.headers import client_address
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
MAX_BODY = 64 * 1024
_SECRET_PARAMS = ("client_secret", "client_assertion", "assertion", "password", "refresh_token")
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
# private_key_jwt: Ed25519 is RFC 9864's name for EdDSA on Ed25519 (oauth4webapi 3.x signs with it).
_ASSERTION_ALGS = ["EdDSA", "Ed25519", "ES256", "RS256"]
# SuperTokens' camelCase JSON fields → RFC 6749 names
_JSON_ALIASES = {
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "grantType": "grant_type",
    "clientAssertion": "client_assertion",
    "clientAssertionType": "client_assertion_type",
}


async def read_params(request: Request) -> dict[str, str]:
    """The request's parameters, each given once: a form body, or a JSON object (snake_case or
    camelCase; `scope` and `audience` may be arrays). Credentials in the query string, a method
    other than POST, an oversized body or a repeated parameter are `invalid_request`."""
    if request.method != "POST":
        raise InvalidRequest("use POST")
    if any(name in _SECRET_PARAMS for name, _ in parse_qsl(request.url.query, keep_blank_values=True)):
        raise InvalidRequest("credentials must not be sent in the query string")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest(f"the body is over {MAX_BODY} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _json_params(body)
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise InvalidRequest("send application/x-www-form-urlencoded or application/json")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("malformed form body") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"{name}: given more than once")
        params[name] = value
    return params


def _json_params(body: bytes) -> dict[str, str]:
    try:
        data = jsonsafe.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: expected a JSON object")
    params: dict[str, str] = {}
    for raw_name, value in data.items():
        name = _JSON_ALIASES.get(raw_name) or str(raw_name)
        if name in params:
            raise InvalidRequest(f"{name}: given more than once")
        if name in ("scope", "audience", "resource") and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise InvalidRequest(f"{name}: expected strings")
            if name != "scope" and len(value) != 1:
                raise InvalidRequest(f"{name}: give one")
            value = " ".join(value) if name == "scope" else value[0]
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"{name}: expected a string")
        params[name] = value
    return params


def routes(runtime: Runtime) -> list[Route]:
    identity = runtime.identity
    config = runtime.config
    tokens: TokenService = identity.tokens
    clients: ClientAuthenticator = identity.client_auth
    client_jwts: ClientJwtAuthenticator = identity.client_jwt
    throttle = Throttle(config.throttle.failures_per_client, config.throttle.failures_per_address)
    base = config.public_base_path

    def address_of(request: Request) -> str:
        peer = request.scope.get("client")
        return client_address(request.scope["headers"], str(peer[0]) if peer else "-", config.trusted_proxies)

    def authorization_of(request: Request) -> str | None:
        values = request.headers.getlist("authorization")
        if len(values) > 1:
            raise InvalidRequest("more than one Authorization header")
        return values[0] if values else None

    async def authenticate(
        request: Request, params: dict[str, str], required: bool
    ) -> AuthenticatedClient | None:
        """Client authentication behind the throttle; failures count against the address and the
        (claimed client, address) pair."""
        authorization = authorization_of(request)
        address = address_of(request)
        claimed = clients.claimed_client(params, authorization)
        wait = throttle.retry_after(address, claimed)
        if wait is not None:
            raise TooManyRequests(wait)
        try:
            found = await clients.authenticate(params, authorization)
        except InvalidClient:
            throttle.failed(address, claimed)
            raise
        if found is None and required:
            raise InvalidClient("client authentication is required")
        return found

    def scopes_and_audience(
        params: dict[str, str], allowed_scopes: tuple[str, ...], allowed_audiences: tuple[str, ...]
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
        target = audience or resource or config.public_url
        if target != config.public_url and target not in allowed_audiences:
            raise InvalidTarget(f"audience {target} is not allowed for this client")
        return scopes, target

    async def token(request: Request) -> Response:
        params = await read_params(request)
        grant_type = params.get("grant_type")
        if not grant_type:
            raise InvalidRequest("grant_type: required")
        if grant_type == CLIENT_CREDENTIALS:
            found = await authenticate(request, params, required=True)
            assert found is not None
            client, credential_id = found.client, found.credential_id
        elif grant_type == JWT_BEARER:
            client, credential_id = await jwt_bearer(request, params)
        elif grant_type == TOKEN_EXCHANGE:
            client, credential_id = await token_exchange(request, params)
        else:
            raise UnsupportedGrantType(f"grant_type {grant_type} is not supported")
        scopes, audience = scopes_and_audience(params, client.scopes, client.audiences)
        access_token, lifetime = tokens.issue(client, scopes, audience, credential_id)
        TOKENS_ISSUED.labels(_GRANT_LABELS[grant_type]).inc()
        if credential_id:
            runtime.usage.used(credential_id)  # a client secret's last use (issue 14)
        return JSONResponse(
            {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": lifetime,
                "scope": " ".join(scopes),
                # RFC 8693 §2.2.1: what kind of token the exchange gave.
                **({"issued_token_type": exchange.ACCESS_TOKEN_TYPE} if grant_type == TOKEN_EXCHANGE else {}),
            },
            headers=_NO_STORE,
        )

    async def token_exchange(request: Request, params: dict[str, str]) -> tuple[Any, str]:
        authorization = authorization_of(request)
        token = exchange.subject_token(
            params,
            client_authentication=authorization is not None
            or any(p in params for p in ("client_secret", "client_assertion", "client_assertion_type")),
        )
        return await external_grant(request, Presented(token))

    async def external_grant(request: Request, presented: Presented) -> tuple[Any, str]:
        """A trusted external token (exchange or jwt-bearer), behind the throttle: failures
        count against the address."""
        address = address_of(request)
        wait = throttle.retry_after(address, None)
        if wait is not None:
            raise TooManyRequests(wait)
        try:
            found = await exchange.external_client(identity.oidc, identity.directory, presented)
        except InvalidGrant:
            throttle.failed(address, None)
            raise
        if found is None:
            throttle.failed(address, None)
            raise InvalidGrant("the token is not from a trusted issuer")
        return found

    async def jwt_bearer(request: Request, params: dict[str, str]) -> tuple[Any, str]:
        """The assertion is a client-signed JWT (contract §2). Anything else, a gateway token or
        an identity JWT included, is invalid_grant: no self-renewal of tokens."""
        assertion = params.get("assertion")
        authorization = authorization_of(request)
        if authorization and authorization[:7].lower() == "bearer ":
            if assertion is not None:
                raise InvalidRequest("send the assertion once")
            assertion = authorization[7:].strip()
        elif authorization is not None or "client_secret" in params or "client_assertion" in params:
            raise InvalidRequest("the jwt-bearer grant authenticates the client by its assertion alone")
        if not assertion:
            raise InvalidRequest("assertion: required")
        presented = Presented(assertion)
        address = address_of(request)
        sub = presented.jwt.claims.get("sub") if presented.jwt else None
        claimed = sub if isinstance(sub, str) else None
        wait = throttle.retry_after(address, claimed)
        if wait is not None:
            raise TooManyRequests(wait)
        try:
            verified = await client_jwts.authenticate(presented)
        except InvalidToken as exc:
            throttle.failed(address, claimed)
            raise InvalidGrant(exc.description) from None
        if verified is None:
            # Not a client-signed JWT of ours: a trusted external token (RFC 7523 with a
            # federated issuer, contract §5), or nothing this grant accepts.
            if params.get("client_id") is not None:
                raise InvalidRequest("client_id: the external token names the client")
            return await external_grant(request, presented)
        client_id = verified.identity.client_id
        assert client_id is not None and presented.jwt is not None
        if params.get("client_id", client_id) != client_id:
            raise InvalidRequest("client_id does not match the assertion")
        try:
            await clients.use_once(client_id, presented.jwt.claims)
        except InvalidClient as exc:
            raise InvalidGrant(exc.description) from None
        client = await identity.directory.client(client_id)
        if client is None or client.disabled:
            raise InvalidGrant("the client is disabled or deleted")
        return client, verified.identity.credential_id or ""

    async def live_claims(token_text: str) -> dict[str, Any] | None:
        """The claims of an active gateway token, else None."""
        presented = Presented(token_text)
        if not tokens.is_ours(presented):
            return None
        try:
            claims = tokens.verify(presented)
        except InvalidToken:
            return None
        if identity.directory.token_revoked(claims["jti"]):
            return None
        client = await identity.directory.client(claims["sub"])
        if client is None or client.disabled:
            return None
        if not await identity.directory.credential_active(claims["sub"], claims["cid"]):
            return None
        return claims

    async def token_request(request: Request) -> tuple[AuthenticatedClient, str]:
        """An authenticated client and the `token` it asks about (introspection, revocation)."""
        params = await read_params(request)
        caller = await authenticate(request, params, required=True)
        assert caller is not None
        token_text = params.get("token")
        if not token_text:
            raise InvalidRequest("token: required")
        return caller, token_text

    async def introspect(request: Request) -> Response:
        caller, token_text = await token_request(request)
        claims = await live_claims(token_text)
        if claims is not None and claims["sub"] != caller.client.client_id:
            grants = await identity.directory.grant_set(caller.client.client_id)
            if grants.find("gateway:introspect", "/gateway/introspect") is None:
                claims = None
        if claims is None:
            return JSONResponse({"active": False}, headers=_NO_STORE)
        answer = {
            k: claims[k]
            for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "tenant")
            if k in claims
        }
        return JSONResponse({"active": True, "token_type": "Bearer", **answer}, headers=_NO_STORE)

    async def revoke(request: Request) -> Response:
        caller, token_text = await token_request(request)
        claims = await live_claims(token_text)
        # RFC 7009 §2.2: 200 whatever the token was; a client revokes only its own tokens.
        if claims is not None and claims["sub"] == caller.client.client_id:
            await asyncio.to_thread(
                identity.store.revoke_token,
                claims["jti"],
                claims["sub"],
                int(claims["exp"]),
                caller.client.client_id,
            )
        return Response(status_code=200, headers=_NO_STORE)

    def discovery_document() -> dict[str, Any]:
        issuer = config.public_url
        return {
            "issuer": issuer,
            "token_endpoint": f"{issuer}/oauth/token",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "grant_types_supported": [CLIENT_CREDENTIALS, JWT_BEARER, TOKEN_EXCHANGE],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
            "introspection_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "introspection_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "revocation_endpoint_auth_signing_alg_values_supported": _ASSERTION_ALGS,
            "response_types_supported": [],
            "scopes_supported": [],
        }

    async def discovery(request: Request) -> Response:
        return JSONResponse(
            discovery_document(),
            headers={"cache-control": f"public, max-age={int(config.tokens.jwks_max_age)}"},
        )

    return [
        Route(f"{base}/oauth/token", token, methods=["POST", "GET", "PUT", "DELETE", "PATCH"]),
        Route(f"{base}/oauth/introspect", introspect, methods=["POST", "GET"]),
        Route(f"{base}/oauth/revoke", revoke, methods=["POST", "GET"]),
        Route(f"{base}/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route(f"{base}/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
        # RFC 8414 §3.1: for an issuer with a path, the metadata URL inserts `/.well-known/...`
        # between the host and the path.
        *(
            [Route(f"/.well-known/oauth-authorization-server{base}", discovery, methods=["GET"])]
            if base
            else []
        ),
    ]
