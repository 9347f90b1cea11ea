"""The client library's verifier, against a JWKS served through httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.client import IDENTITY, GatewayIdentityMiddleware, TokenVerifier, VerificationError
from gateway.crypto import MasterKey, Sealer
from gateway.identity.signing import KeyRing, new_signing_key

ISSUER = "http://gw.test"


@pytest.fixture
def ring() -> KeyRing:
    sealer = Sealer(MasterKey(b"k" * 32))
    return KeyRing([new_signing_key(sealer, "ES256", "current")], sealer)


def transports(ring: KeyRing) -> tuple[httpx.MockTransport, httpx.MockTransport, list[int]]:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        assert request.url == f"{ISSUER}/.well-known/jwks.json"
        return httpx.Response(200, json=ring.jwks())

    return httpx.MockTransport(handler), httpx.MockTransport(handler), calls


def sign(ring: KeyRing, typ: str = "at+jwt", **claims: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "sc_x", "aud": "documents", "iat": now, "exp": now + 60, **claims}
    return ring.sign(body, typ)


def test_verify_and_key_cache(ring: KeyRing) -> None:
    sync, asyn, calls = transports(ring)
    v = TokenVerifier(ISSUER, transport=sync, async_transport=asyn)
    assert v.verify(sign(ring), audience="documents")["sub"] == "sc_x"
    assert asyncio.run(v.averify(sign(ring), audience="documents"))["sub"] == "sc_x"
    assert len(calls) == 1
    with pytest.raises(VerificationError):
        v.verify(sign(ring, typ=IDENTITY))  # the right key, the wrong kind of token
    with pytest.raises(VerificationError):
        v.verify(sign(ring), audience="billing")
    with pytest.raises(VerificationError):
        v.verify(sign(ring, exp=int(time.time()) - 600))
    forged = jwt.encode(
        {"iss": ISSUER, "sub": "x", "iat": 1, "exp": 2**40},
        "s" * 32,
        algorithm="HS256",
        headers={"kid": "nope", "typ": "at+jwt"},
    )
    for _ in range(3):
        with pytest.raises(VerificationError):
            v.verify(forged)
    assert len(calls) == 1  # an unknown kid fetches again at most once per refresh interval


def test_middleware_guards_the_app(ring: KeyRing) -> None:
    _, asyn, _ = transports(ring)

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"sub": request.scope["gateway_identity"]["sub"]})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": "gateway_identity" not in request.scope})

    app = GatewayIdentityMiddleware(
        Starlette(routes=[Route("/me", whoami), Route("/health", health)]),
        issuer=ISSUER,
        audience="documents",
        exempt=("/health",),
        verifier=TokenVerifier(ISSUER, async_transport=asyn),
    )

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://up") as client:
            signed_for_me = sign(ring, typ=IDENTITY, method="GET", path="/me")
            ok = await client.get("/me", headers={"x-gateway-identity": signed_for_me})
            assert ok.status_code == 200 and ok.json() == {"sub": "sc_x"}
            assert (await client.get("/me")).status_code == 401
            assert (await client.get("/health")).json() == {"ok": True}
            bad = await client.get(
                "/me", headers={"x-gateway-identity": sign(ring, typ=IDENTITY, aud="billing", method="GET", path="/me")}
            )
            assert bad.status_code == 401 and json.loads(bad.content)["error"] == "invalid_token"

    asyncio.run(main())
