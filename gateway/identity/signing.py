"""The gateway's own signing keys: generated here, stored sealed under the master key, opened into
memory at start and whenever the change feed says they changed. The current key signs gateway
tokens and X-Gateway-Identity; the next, current and recently retired keys are published and
verify, so a rotation never breaks a token in flight.

Key lifecycle (rotated by `gateway.identity.rotation` on a schedule, or `gateway keys rotate-signing`):

    next ──(published ≥ jwks_max_age)──▶ current ──(rotation)──▶ retired ──(its tokens expired)──▶ gone
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.cache import ExpiringCache
from gateway.crypto import Sealer, b64url, random_id
from gateway.models import Identity, SigningKey, now_iso


def _generate(alg: str) -> Any:
    if alg == "EdDSA":
        return Ed25519PrivateKey.generate()
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(f"unsupported signing algorithm {alg}")


def public_jwk(alg: str, public_key: Any, kid: str) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.get_algorithm_by_name(alg).to_jwk(public_key, as_dict=True)
    jwk.update(kid=kid, alg=alg, use="sig")
    return jwk


def new_signing_key(sealer: Sealer, alg: str = "EdDSA", state: str = "current") -> SigningKey:
    private = _generate(alg)
    kid = random_id("sig_", 16)
    der = private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = public_jwk(alg, private.public_key(), kid)
    return SigningKey(kid, alg, sealer.seal(der, f"signing-key:{kid}"), json.dumps(jwk), state, now_iso())


@dataclass(frozen=True)
class Signer:
    kid: str
    alg: str
    private: Any
    activated_at: str | None


class KeyRing:
    """The signing keys in memory: the current one signs; all published ones verify."""

    def __init__(self, keys: list[SigningKey], sealer: Sealer) -> None:
        published = [k for k in keys if k.state in ("next", "current", "retired")]
        self.published = [json.loads(k.public_jwk) for k in published]
        self.verifiers: dict[str, tuple[str, Any]] = {}
        for k in published:
            self.verifiers[k.kid] = (k.alg, jwt.get_algorithm_by_name(k.alg).from_jwk(k.public_jwk))
        current = [k for k in keys if k.state == "current"]
        if not current:
            raise ValueError("no current signing key in the store (run `gateway init`)")
        k = current[-1]
        private = serialization.load_der_private_key(
            sealer.open(k.sealed_private, f"signing-key:{k.kid}"), None
        )
        self.current = Signer(k.kid, k.alg, private, k.activated_at or k.created_at)
        self.next = next((key for key in keys if key.state == "next"), None)

    def sign(self, claims: dict[str, object], typ: str) -> str:
        return jwt.encode(
            claims,
            self.current.private,
            algorithm=self.current.alg,
            headers={"typ": typ, "kid": self.current.kid},
        )

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": self.published}


class IdentityHeaders:
    """Mints X-Gateway-Identity: who the caller is, for this route, method, path and upstream.

    Signing costs tens of microseconds, so a token is reused for the same (client, method of
    authentication, route, method, path, upstream) for up to `reuse` seconds of its `lifetime`
    (at most 60 s, contract §4); its `jti` then names the token, and X-Request-Id the request.
    """

    typ = "gateway-identity+jwt"

    def __init__(self, holder: RingHolder, issuer: str, lifetime: int = 60, reuse: int = 30) -> None:
        self.holder = holder
        self.issuer = issuer
        self.lifetime = min(lifetime, 60)
        self._cache: ExpiringCache[tuple[str | None, ...], str] = ExpiringCache(
            50_000, min(reuse, self.lifetime)
        )

    def token_until(
        self, identity: Identity, route: str, method: str, path: str, upstream: str
    ) -> tuple[str, float] | None:
        """The token and until when (time.monotonic) it may be reused, when it can be had without
        blocking the event loop: reused, or signed here with EdDSA or ES256 (tens of microseconds:
        a thread hop would cost more). None when it takes an RSA signature (about a millisecond):
        `token_async` makes that in a thread."""
        key = self._key(identity, route, method, path, upstream)
        found = self._cache.entry(key)
        if found is None and self.holder.ring.current.alg != "RS256":
            self._cache[key] = self._mint(identity, route, method, path, upstream)
            found = self._cache.entry(key)
        return found

    async def token_async(self, identity: Identity, route: str, method: str, path: str, upstream: str) -> str:
        """The same token; an RSA signature is made in a thread, so a burst of new paths cannot
        stall the event loop. The cache is only touched here, on the loop."""
        found = self.token_until(identity, route, method, path, upstream)
        if found is not None:
            return found[0]
        key = self._key(identity, route, method, path, upstream)  # before: the ring may rotate meanwhile
        token = await asyncio.to_thread(self._mint, identity, route, method, path, upstream)
        self._cache[key] = token
        return token

    def _key(
        self, identity: Identity, route: str, method: str, path: str, upstream: str
    ) -> tuple[str | None, ...]:
        # The subject is part of the key: an `oidc` caller's subject is the external `sub`, and
        # several workloads may map to one client. So is every other claim taken from the
        # identity: a client moved to another tenant gets a token that says so at once.
        return (
            identity.client_id,
            identity.subject,
            identity.identity_id,
            identity.tenant,
            identity.method,
            route,
            method,
            path,
            upstream,
            self.holder.ring.current.kid,
        )

    def _mint(self, identity: Identity, route: str, method: str, path: str, upstream: str) -> str:
        now = int(time.time())
        return self.holder.ring.sign(
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
                "jti": b64url(os.urandom(16)),
                **({"tenant": identity.tenant} if identity.tenant else {}),
                **({"identity_id": identity.identity_id} if identity.identity_id else {}),
            },
            self.typ,
        )


class RingHolder:
    """The current KeyRing, swapped whole when the signing keys change (a reference swap, so a
    request never sees half of a rotation)."""

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring
