"""The token server's metadata (RFC 8414, and OpenID Connect discovery's document name)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.config import Config
from gateway.oauth.token import CLIENT_CREDENTIALS, JWT_BEARER, TOKEN_EXCHANGE

# private_key_jwt: Ed25519 is RFC 9864's name for EdDSA on Ed25519 (oauth4webapi 3.x signs with it).
_ASSERTION_ALGS = ["EdDSA", "Ed25519", "ES256", "RS256"]


def discovery_document(config: Config) -> dict[str, Any]:
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


def discovery(config: Config) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint serving the document (the same at every metadata URL)."""
    document = discovery_document(config)
    headers = {"cache-control": f"public, max-age={int(config.tokens.jwks_max_age)}"}

    async def endpoint(request: Request) -> Response:
        return JSONResponse(document, headers=headers)

    return endpoint
