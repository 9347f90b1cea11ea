"""`gateway_jwt`: the gateway's own access tokens (contract §3), verified from the in-memory key
ring with no network call. Refused when revoked, when the client is disabled or deleted, or when
the credential the token was issued on has been revoked since."""

from __future__ import annotations

from gateway.errors import InvalidToken
from gateway.identity.directory import Directory
from gateway.identity.tokens import TokenService
from gateway.models import Identity
from gateway.pipeline.authn import Verified
from gateway.presented import Presented


class GatewayJwtAuthenticator:
    kind = "gateway_jwt"

    def __init__(self, directory: Directory, tokens: TokenService) -> None:
        self.directory = directory
        self.tokens = tokens

    async def authenticate(self, presented: Presented) -> Verified | None:
        if not self.tokens.is_ours(presented):
            return None
        claims = self.tokens.verify(presented)
        if self.directory.token_revoked(claims["jti"]):
            raise InvalidToken("the token was revoked", reason="revoked")
        client_id = claims["sub"]
        client = await self.directory.client(client_id)
        if client is None or client.disabled:
            raise InvalidToken("the client is disabled or deleted", reason="disabled_client")
        credential_expires = await self.directory.credential_expiry(client_id, claims["cid"])
        if credential_expires is False:
            raise InvalidToken(
                "the credential this token was issued on was revoked or expired", reason="revoked"
            )
        expires_at = float(claims["exp"]) + self.tokens.tokens.leeway
        if isinstance(credential_expires, float):
            expires_at = min(expires_at, credential_expires)
        audience = claims.get("aud")
        audiences = (
            [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        )
        scope = claims.get("scope")
        return Verified(
            Identity(
                method=self.kind,
                client_id=client_id,
                subject=client_id,
                tenant=client.tenant,
                scopes=frozenset(scope.split()) if isinstance(scope, str) else frozenset(),
                audiences=frozenset(a for a in audiences if isinstance(a, str)),
                credential_id=claims["cid"],
                forwardable_token=presented.text,
            ),
            expires_at=expires_at,
        )
