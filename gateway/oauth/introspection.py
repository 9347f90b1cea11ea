"""POST /oauth/introspect (RFC 7662) and /oauth/revoke (RFC 7009): an authenticated client asks
about a gateway token, or ends one of its own."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import InvalidToken
from gateway.oauth.clients import ClientRequests
from gateway.oauth.params import NO_STORE
from gateway.presented import Presented
from gateway.runtime import Runtime


class TokenStatus:
    def __init__(self, runtime: Runtime, requests: ClientRequests) -> None:
        self.identity = runtime.identity
        self.tokens = runtime.identity.tokens
        self.requests = requests

    async def live_claims(self, token_text: str) -> dict[str, Any] | None:
        """The claims of an active gateway token, else None."""
        presented = Presented(token_text)
        if not self.tokens.is_ours(presented):
            return None
        try:
            claims = self.tokens.verify(presented)
        except InvalidToken:
            return None
        if self.identity.directory.token_revoked(claims["jti"]):
            return None
        client = await self.identity.directory.client(claims["sub"])
        if client is None or client.disabled:
            return None
        if not await self.identity.directory.credential_active(claims["sub"], claims["cid"]):
            return None
        return claims

    async def introspect(self, request: Request) -> Response:
        caller, token_text = await self.requests.about_token(request)
        claims = await self.live_claims(token_text)
        if claims is not None and claims["sub"] != caller.client.client_id:
            grants = await self.identity.directory.grant_set(caller.client.client_id)
            if grants.find("gateway:introspect", "/gateway/introspect") is None:
                claims = None
        if claims is None:
            return JSONResponse({"active": False}, headers=NO_STORE)
        answer = {
            k: claims[k]
            for k in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "tenant")
            if k in claims
        }
        return JSONResponse({"active": True, "token_type": "Bearer", **answer}, headers=NO_STORE)

    async def revoke(self, request: Request) -> Response:
        caller, token_text = await self.requests.about_token(request)
        claims = await self.live_claims(token_text)
        # RFC 7009 §2.2: 200 whatever the token was; a client revokes only its own self.tokens.
        if claims is not None and claims["sub"] == caller.client.client_id:
            await asyncio.to_thread(
                self.identity.store.revoke_token,
                claims["jti"],
                claims["sub"],
                int(claims["exp"]),
                caller.client.client_id,
            )
        return Response(status_code=200, headers=NO_STORE)
