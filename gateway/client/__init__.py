"""The Python client library (contract §11): tokens from an access key, and an httpx.Auth.

    from gateway.client import ServiceClientTokenProvider, GatewayAuth
    provider = ServiceClientTokenProvider(access_key, "https://gw.example.com")
    httpx.get("https://gw.example.com/v1/things", auth=GatewayAuth(provider))

Tokens are client-signed JWTs, the same ones Authress's ServiceClientTokenProvider makes, signed
locally with the access key: no network call, no secret leaves the process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator

import httpx
import jwt

from gateway.crypto import parse_access_key


class ServiceClientTokenProvider:
    """Mints and caches client-signed tokens. `issuer_origin` is the gateway's `public_url` (or
    `admin.public_url` for the admin API), path included."""

    def __init__(
        self, access_key: str, issuer_origin: str, lifetime: int = 3600, audience: str | None = None
    ) -> None:
        try:
            self._key = parse_access_key(access_key.strip())
        except ValueError as exc:
            raise ValueError(f"not a gateway access key: {exc}") from None
        self.client_id = self._key.client_id
        self.issuer = f"{issuer_origin.rstrip('/')}/v1/clients/{self.client_id}"
        self.audience = audience or f"{self._key.account_id}.accounts.authress.io"
        self.lifetime = lifetime
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def get_token(self) -> str:
        """A cached token, renewed when less than a tenth of its lifetime (at most 5 min) is left."""
        with self._lock:
            now = time.time()
            if self._token is None or now > self._expires - min(300, self.lifetime / 10):
                issued = int(now)
                self._expires = issued + self.lifetime
                self._token = jwt.encode(
                    {
                        "iss": self.issuer,
                        "sub": self.client_id,
                        "client_id": self.client_id,
                        "aud": self.audience,
                        "iat": issued,
                        "exp": issued + self.lifetime,
                    },
                    self._key.private_key(),
                    algorithm="EdDSA",
                    headers={"kid": self._key.key_id, "typ": "at+jwt"},
                )
            return self._token


class GatewayAuth(httpx.Auth):
    """httpx authentication that sends `Authorization: Bearer <token>` from a provider."""

    def __init__(self, provider: ServiceClientTokenProvider) -> None:
        self.provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.provider.get_token()}"
        yield request


from gateway.client.verify import (  # noqa: E402  (re-exported, as httpx does)
    ACCESS_TOKEN,
    IDENTITY,
    GatewayIdentityMiddleware,
    TokenVerifier,
    VerificationError,
    verify_token,
)

__all__ = [
    "ACCESS_TOKEN",
    "IDENTITY",
    "GatewayAuth",
    "GatewayIdentityMiddleware",
    "ServiceClientTokenProvider",
    "TokenVerifier",
    "VerificationError",
    "verify_token",
]
