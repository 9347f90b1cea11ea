"""Access keys and JWTs made by hand: the well-formed ones a client makes, and every malformed
shape the gateway must refuse. JWTs are assembled here byte by byte (no library in between), so a
test can put anything in a header or a claim, including JSON no library would write (1e400)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ED25519_B64_PREFIX = "MC4CAQAwBQYDK2VwBCIEI"


@dataclass(frozen=True)
class Key:
    """A parsed access key string."""

    text: str
    client_id: str
    key_id: str
    account_id: str
    encoded: str

    @classmethod
    def parse(cls, text: str) -> Key:
        client_id, key_id, account_id, encoded = text.split(".")
        return cls(text, client_id, key_id, account_id, encoded)

    @property
    def der(self) -> bytes:
        return base64.b64decode(self.encoded, validate=True)

    @property
    def private(self) -> Ed25519PrivateKey:
        key = serialization.load_der_private_key(self.der, None)
        assert isinstance(key, Ed25519PrivateKey)
        return key

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes_raw()

    def with_parts(self, **parts: str) -> str:
        values = {
            "client_id": self.client_id,
            "key_id": self.key_id,
            "account_id": self.account_id,
            "encoded": self.encoded,
        }
        values.update(parts)
        return ".".join(values[k] for k in ("client_id", "key_id", "account_id", "encoded"))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64url_json(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value, separators=(",", ":")).encode()
    return b64url(raw)


def sign_ed25519(private: Ed25519PrivateKey, header: Any, claims: Any) -> str:
    """A compact JWS: `header` and `claims` are dicts or raw JSON bytes."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(private.sign(signing_input.encode()))}"


def sign_hs256(secret: bytes, header: Any, claims: Any) -> str:
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned(header: Any, claims: Any) -> str:
    return f"{b64url_json(header)}.{b64url_json(claims)}."


def client_claims(key: Key, base: str, **overrides: Any) -> dict[str, Any]:
    """The claims Authress's ServiceClientTokenProvider signs, for `base` (public or admin URL)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{base.rstrip('/')}/v1/clients/{key.client_id}",
        "sub": key.client_id,
        "client_id": key.client_id,
        "aud": f"{key.account_id}.accounts.authress.io",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def client_jwt(key: Key, base: str, header: dict[str, Any] | None = None, **claims: Any) -> str:
    head = {"alg": "EdDSA", "kid": key.key_id, "typ": "JWT"}
    head.update(header or {})
    return sign_ed25519(key.private, head, client_claims(key, base, **claims))


def flip_signature(token: str) -> str:
    """The same token with one signature character changed (in the middle, where every bit counts)."""
    head, body, sig = token.split(".")
    i = len(sig) // 2
    sig = sig[:i] + ("A" if sig[i] != "A" else "B") + sig[i + 1 :]
    return f"{head}.{body}.{sig}"


def x25519_pkcs8_b64() -> str:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    der = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def rsa_pkcs8_b64(bits: int = 2048) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    der = rsa.generate_private_key(public_exponent=65537, key_size=bits).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()


def fresh_ed25519_b64() -> str:
    der = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return base64.b64encode(der).decode()
