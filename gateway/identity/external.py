"""Verifying a token of a trusted external issuer (contract §5): its signature against the
issuer's published keys and its times. Which entry it matches, if any, is the caller's question.

`alg` must be one of RS256, PS256, ES256 or EdDSA and fit the key's type (an HMAC or `none`
token never gets this far); `crit` is refused; `jku`, `x5u`, `jwk` and `x5c` are never read;
`exp` is required, `nbf` and `iat` are honoured with the leeway; NumericDates are finite numbers;
`sub` is a string.
"""

from __future__ import annotations

from typing import Any

import jwt

from gateway.errors import InvalidToken
from gateway.identity.jwks import ALGORITHMS, JwksFetcher
from gateway.jws import invalid_token
from gateway.presented import Presented, numeric_date


class ExternalTokenVerifier:
    def __init__(self, fetcher: JwksFetcher, leeway: float = 30.0) -> None:
        self.fetcher = fetcher
        self.leeway = leeway

    async def verify(self, presented: Presented, jwks_uri: str | None = None) -> dict[str, Any]:
        """The verified claims, or InvalidToken."""
        token = presented.jwt
        if token is None:
            raise InvalidToken("not a JWT", reason="malformed")
        header, claims = token.header, token.claims
        issuer, alg, kid = claims.get("iss"), header.get("alg"), header.get("kid")
        if not isinstance(issuer, str):
            raise InvalidToken("the token has no issuer", reason="malformed")
        if alg not in ALGORITHMS:
            raise InvalidToken("unsupported signing algorithm", reason="malformed")
        if "crit" in header:
            raise InvalidToken("unsupported critical header", reason="malformed")
        if kid is not None and (not isinstance(kid, str) or len(kid) > 256):
            raise InvalidToken("malformed kid", reason="malformed")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("the token has no subject", reason="malformed")
        try:
            for name in ("exp", "nbf", "iat"):
                numeric_date(claims, name)
        except ValueError as exc:
            raise InvalidToken(str(exc), reason="malformed") from None
        if claims.get("exp") is None:
            raise InvalidToken("the token has no exp", reason="malformed")
        assert isinstance(alg, str)
        key = await self.fetcher.key(issuer, kid, alg, jwks_uri)
        try:
            verified: dict[str, Any] = jwt.decode(
                presented.text,
                key.key,
                algorithms=[alg],
                options={"require": ["exp"], "verify_aud": False, "verify_iss": False},
                leeway=self.leeway,
            )
        except jwt.PyJWTError as exc:
            raise invalid_token(exc) from None
        return verified


def audiences_of(claims: dict[str, Any]) -> list[str]:
    audience = claims.get("aud")
    values = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
    return [a for a in values if isinstance(a, str)]
