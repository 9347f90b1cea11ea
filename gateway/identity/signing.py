"""The gateway's own signing keys: generated here, stored sealed under the master key, opened
into memory at start. They sign the X-Gateway-Identity header (and the token server's tokens).
"""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass

import jwt
from cachetools import TTLCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.crypto import Sealer, random_id
from gateway.identity.models import SigningKey, now_iso
from gateway.pipeline.identity import Identity


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def new_signing_key(sealer: Sealer, state: str = "current") -> SigningKey:
    private = Ed25519PrivateKey.generate()
    kid = random_id("sig_", 16)
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = private.public_key().public_bytes_raw()
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": _b64(public), "kid": kid, "alg": "EdDSA", "use": "sig"}
    return SigningKey(kid, "EdDSA", sealer.seal(der, f"signing-key:{kid}"), json.dumps(jwk), state, now_iso())


@dataclass(frozen=True)
class OpenKey:
    kid: str
    alg: str
    private: Ed25519PrivateKey
    jwk: dict[str, str]


class KeyRing:
    """The signing keys in memory: the current one signs; all published ones verify."""

    def __init__(self, keys: list[SigningKey], sealer: Sealer) -> None:
        self.published = [json.loads(k.public_jwk) for k in keys if k.state != "revoked"]
        current = [k for k in keys if k.state == "current"]
        if not current:
            raise ValueError("no current signing key in the store (run `gateway init`)")
        k = current[-1]
        private = serialization.load_der_private_key(
            sealer.open(k.sealed_private, f"signing-key:{k.kid}"), None
        )
        assert isinstance(private, Ed25519PrivateKey)
        self.current = OpenKey(k.kid, k.alg, private, json.loads(k.public_jwk))

    def sign(self, claims: dict[str, object], typ: str) -> str:
        return jwt.encode(
            claims,
            self.current.private,
            algorithm=self.current.alg,
            headers={"typ": typ, "kid": self.current.kid},
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": self.published}


class IdentityHeaders:
    """Mints X-Gateway-Identity: who the caller is, for this route, method, path and upstream.

    Signing costs tens of microseconds, so a token is reused for the same (client, route, method,
    path, upstream) for up to `reuse` seconds of its `lifetime` (at most 60 s, contract §4); its
    `jti` then names the token, and X-Request-Id names the request.
    """

    typ = "gateway-identity+jwt"

    def __init__(self, ring: KeyRing, issuer: str, lifetime: int = 60, reuse: int = 30) -> None:
        self.ring = ring
        self.issuer = issuer
        self.lifetime = min(lifetime, 60)
        self._cache: TTLCache[tuple[str | None, str, str, str, str, str], str] = TTLCache(
            50_000, min(reuse, self.lifetime)
        )

    def token(self, identity: Identity, route: str, method: str, path: str, upstream: str) -> str:
        key = (identity.client_id, identity.method, route, method, path, upstream)
        token = self._cache.get(key)
        if token is None:
            now = int(time.time())
            token = self.ring.sign(
                {
                    "iss": self.issuer,
                    "sub": identity.subject,
                    "client_id": identity.client_id,
                    "aud": upstream,
                    "route": route,
                    "method": method,
                    "path": path,
                    "auth_method": identity.method,
                    "iat": now,
                    "exp": now + self.lifetime,
                    "jti": _b64(os.urandom(16)),
                    **({"tenant": identity.tenant} if identity.tenant else {}),
                },
                self.typ,
            )
            self._cache[key] = token
        return token
