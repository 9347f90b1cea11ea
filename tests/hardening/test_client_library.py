"""Defect 5: the client library trusts only what was meant for this service and this request.

`verify_token` / `TokenVerifier` skipped the audience check unless one was passed, and the
upstream middleware ignored the signed method and path of `X-Gateway-Identity`. Here a real
gateway signs the identity token (the recording upstream keeps it), and the library checks it
against that gateway's published keys: an identity token needs an audience, an access token is
for the gateway's own audience unless the caller names another, and the middleware refuses a
token replayed on another method or path.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.client import IDENTITY, GatewayIdentityMiddleware, TokenVerifier, VerificationError, verify_token
from tests.identity.proxying import bearer
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream, http_client, new_mark


def _identity_token(gw: Gateway, recorder: Upstream) -> str:
    _, key = gw.admin().new_client_with_key()
    mark = new_mark()
    with http_client() as http:
        assert http.get(gw.public_url + "/whoami?x=1", headers={**bearer(key), MARK: mark}).status_code == 200
    [record] = recorder.marked(mark)
    [token] = headers_named(record, "x-gateway-identity")
    return token


def _access_token(gw: Gateway, audience: str | None = None) -> str:
    client_id, key = gw.admin().new_client_with_key(**({"audiences": [audience]} if audience else {}))
    with http_client() as http:
        data = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": key}
        if audience:
            data["audience"] = audience
        response = http.post(gw.token_url, data=data)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def test_an_identity_token_needs_the_audience(gateway: Gateway, recorder: Upstream) -> None:
    token = _identity_token(gateway, recorder)
    with pytest.raises(ValueError, match="audience"):
        verify_token(token, gateway.public_url, typ=IDENTITY)
    with pytest.raises(ValueError, match="audience"):
        TokenVerifier(gateway.public_url).verify(token, typ=IDENTITY)
    with pytest.raises(VerificationError):
        verify_token(token, gateway.public_url, typ=IDENTITY, audience="billing")
    assert verify_token(token, gateway.public_url, typ=IDENTITY, audience="documents")["path"] == "/whoami"


def test_an_access_token_is_for_the_gateway_unless_told_otherwise(gateway: Gateway) -> None:
    verifier = TokenVerifier(gateway.public_url)
    assert verifier.verify(_access_token(gateway))["aud"] == gateway.public_url
    elsewhere = _access_token(gateway, audience="billing")
    with pytest.raises(VerificationError):
        verifier.verify(elsewhere)  # minted for another service: not for us by default
    assert verifier.verify(elsewhere, audience="billing")["aud"] == "billing"


def test_the_middleware_checks_the_signed_method_and_path(gateway: Gateway, recorder: Upstream) -> None:
    token = _identity_token(gateway, recorder)

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.scope["gateway_identity"]["sub"]})

    app = Starlette(routes=[Route("/{path:path}", whoami, methods=["GET", "POST", "DELETE"])])
    guarded = GatewayIdentityMiddleware(app, issuer=gateway.public_url, audience="documents")

    async def send(method: str, path: str) -> int:
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as http:
            response = await http.request(method, path, headers={"x-gateway-identity": token})
            return response.status_code

    assert asyncio.run(send("GET", "/whoami?x=1")) == 200  # the query plays no part
    for method, path in [("DELETE", "/whoami"), ("GET", "/admin"), ("GET", "/whoami/"), ("POST", "/whoami")]:
        assert asyncio.run(send(method, path)) == 401, (method, path)


def test_the_middleware_follows_a_stripped_prefix(gateway: Gateway, recorder: Upstream) -> None:
    token = _identity_token(gateway, recorder)  # signed for /whoami

    async def ok(request: Request) -> JSONResponse:
        return JSONResponse({})

    app = Starlette(routes=[Route("/{path:path}", ok)])
    # As if the gateway's upstream stripped `/whoami` and prefixed `/base`.
    guarded = GatewayIdentityMiddleware(
        app, issuer=gateway.public_url, audience="documents", strip_prefix="/whoami", base_path="/base"
    )

    async def send(path: str) -> int:
        transport = httpx.ASGITransport(app=guarded)
        async with httpx.AsyncClient(transport=transport, base_url="http://upstream") as http:
            return (await http.get(path, headers={"x-gateway-identity": token})).status_code

    assert asyncio.run(send("/base/")) == 200
    assert asyncio.run(send("/whoami")) == 401
