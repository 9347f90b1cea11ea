"""JWTs the harness makes itself, with the `cryptography` package only (no JWT library), so the
peer (HAProxy) and the gateway are fed tokens that neither of them produced."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    c = b64url(json.dumps(claims, separators=(",", ":")).encode())
    return f"{h}.{c}".encode("ascii")


class ES256Signer:
    """An ES256 (P-256, SHA-256) key pair; the public half is written as PEM for HAProxy."""

    def __init__(self, kid: str = "bench-es256") -> None:
        self.kid = kid
        self.key = ec.generate_private_key(ec.SECP256R1())

    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def write_public_pem(self, path: Path) -> Path:
        path.write_bytes(self.public_pem())
        return path

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid}
        signing_input = _signing_input(header, claims)
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")  # JWS wants raw r || s
        return f"{signing_input.decode()}.{b64url(signature)}"


def es256_token(
    signer: ES256Signer,
    issuer: str,
    subject: str = "sc_benchbenchbenchbenchbe",
    audience: str = "bench",
    scope: str = "documents:read",
    lifetime: int = 4 * 3600,
) -> str:
    now = int(time.time())
    return signer.sign({
        "iss": issuer, "sub": subject, "client_id": subject, "aud": audience, "scope": scope,
        "iat": now, "exp": now + lifetime, "jti": uuid.uuid4().hex,
    })


def client_jwt(access_key: str, base_url: str, audience: str, lifetime: int = 3600,
               jti: bool = True) -> str:
    """A client-signed EdDSA JWT as Authress's ServiceClientTokenProvider makes it (contract §2),
    from an access key `client_id.key_id.account_id.base64(PKCS#8 DER)`."""
    client_id, key_id, _account, der_b64 = access_key.split(".", 3)
    key = serialization.load_der_private_key(base64.b64decode(der_b64), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("the access key is not an Ed25519 key")
    now = int(time.time())
    claims = {
        "iss": f"{base_url.rstrip('/')}/v1/clients/{client_id}", "sub": client_id,
        "client_id": client_id, "aud": audience, "iat": now, "exp": now + lifetime,
    }
    if jti:
        claims["jti"] = uuid.uuid4().hex
    signing_input = _signing_input({"alg": "EdDSA", "kid": key_id, "typ": "JWT"}, claims)
    return f"{signing_input.decode()}.{b64url(key.sign(signing_input))}"
