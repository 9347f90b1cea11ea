"""Gateway access tokens (RFC 9068): issued by the token endpoint, verified in memory.

Claims: iss (= public_url), sub and client_id (the client), aud, scope, iat, exp, jti, tenant
(when the client has one) and `cid`: the credential the token was issued on, so that revoking
that credential also kills the tokens it bought (contract §2).
"""

from __future__ import annotations

import os
import time
from typing import Any

import jwt

from gateway.config import Config
from gateway.crypto import b64url
from gateway.errors import InvalidToken
from gateway.identity.signing import RingHolder
from gateway.jws import invalid_token
from gateway.models import Client
from gateway.presented import Presented, numeric_date

TYP = "at+jwt"


class TokenService:
    def __init__(self, holder: RingHolder, config: Config) -> None:
        self.holder = holder
        self.issuer = config.public_url
        self.tokens = config.tokens

    def lifetime_for(self, client: Client) -> int:
        return int(min(client.token_lifetime or self.tokens.lifetime, self.tokens.max_lifetime))

    def issue(
        self, client: Client, scopes: tuple[str, ...], audience: str, credential_id: str
    ) -> tuple[str, int]:
        lifetime = self.lifetime_for(client)
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client.client_id,
            "client_id": client.client_id,
            "aud": audience,
            "scope": " ".join(scopes),
            "iat": now,
            "exp": now + lifetime,
            "jti": b64url(os.urandom(18)),
            "cid": credential_id,
        }
        if client.tenant:
            claims["tenant"] = client.tenant
        return self.holder.ring.sign(claims, TYP), lifetime

    def is_ours(self, presented: Presented) -> bool:
        token = presented.jwt
        return token is not None and token.claims.get("iss") == self.issuer and "cid" in token.claims

    def verify(self, presented: Presented) -> dict[str, Any]:
        """The claims of a gateway token whose signature, type, issuer and times check out.
        Raises InvalidToken otherwise. Revocation and client state are the caller's to check."""
        token = presented.jwt
        if token is None or token.claims.get("iss") != self.issuer:
            raise InvalidToken("not a gateway token", reason="unrecognised")
        header = token.header
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() != TYP or "crit" in header:
            raise InvalidToken("not a gateway access token", reason="malformed")
        kid = header.get("kid")
        verifier = self.holder.ring.verifiers.get(kid) if isinstance(kid, str) else None
        if verifier is None:
            raise InvalidToken("signed by a key that is not published", reason="unknown_key")
        alg, key = verifier
        if header.get("alg") != alg:
            raise InvalidToken("algorithm does not match the key", reason="malformed")
        try:
            for name in ("exp", "iat", "nbf"):
                numeric_date(token.claims, name)
            claims: dict[str, Any] = jwt.decode(
                presented.text,
                key,
                algorithms=[alg],
                options={"require": ["exp", "iat", "sub", "jti"], "verify_aud": False},
                leeway=self.tokens.leeway,
            )
        except ValueError as exc:
            raise InvalidToken(str(exc), reason="malformed") from None
        except jwt.PyJWTError as exc:
            raise invalid_token(exc) from None
        if claims.get("client_id", claims["sub"]) != claims["sub"] or not isinstance(claims.get("cid"), str):
            raise InvalidToken("malformed token", reason="malformed")
        return claims
