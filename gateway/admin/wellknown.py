"""Discovery documents and public keys, on both listeners under each one's base path:
the gateway's JWKS (it verifies X-Gateway-Identity and, later, gateway tokens) and each service
client's access keys as JWKs (what Authress's verifyToken fetches for client-signed tokens).
Query strings (the Python SDK adds `?kid=…&iss=…`) are ignored."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.crypto import b64url
from gateway.errors import NotFound
from gateway.runtime import Runtime

_CACHE = {"cache-control": "public, max-age=60"}


def routes(runtime: Runtime, base_url: str, base_path: str) -> list[Route]:
    identity = runtime.identity

    jwks_cache = {"cache-control": f"public, max-age={int(runtime.config.tokens.jwks_max_age)}"}

    async def gateway_jwks(request: Request) -> Response:
        return JSONResponse(identity.holder.ring.jwks(), headers=jwks_cache)

    # Public and unauthenticated: both documents come from the directory's caches (ids checked
    # against their format first, invalidated by the change feed), never a store query per call.
    async def enabled_client(client_id: str) -> None:
        client = await identity.directory.client(client_id)
        if client is None or client.disabled:
            raise NotFound(f"no client {client_id}")

    async def client_configuration(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        await enabled_client(client_id)
        issuer = f"{base_url}/v1/clients/{client_id}"
        return JSONResponse(
            {"issuer": issuer, "jwks_uri": f"{issuer}/.well-known/openid-configuration/jwks"}, headers=_CACHE
        )

    async def client_jwks(request: Request) -> Response:
        client_id = request.path_params["client_id"]
        await enabled_client(client_id)
        kid = request.query_params.get("kid")  # the Python SDK names the key it wants
        keys = (await identity.directory.client_keys(client_id, kid)).access
        jwks = [
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64url(k.public_key),
                "kid": k.key_id,
                "alg": "EdDSA",
                "use": "sig",
            }
            for k in keys
        ]
        return JSONResponse({"keys": jwks}, headers=_CACHE)

    p = base_path
    return [
        Route(f"{p}/.well-known/jwks.json", gateway_jwks, methods=["GET"]),
        Route(f"{p}/.well-known/openid-configuration/jwks", gateway_jwks, methods=["GET"]),
        Route(
            f"{p}/v1/clients/{{client_id}}/.well-known/openid-configuration",
            client_configuration,
            methods=["GET"],
        ),
        Route(
            f"{p}/v1/clients/{{client_id}}/.well-known/openid-configuration/jwks",
            client_jwks,
            methods=["GET"],
        ),
    ]
