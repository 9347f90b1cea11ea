"""A client's registered public key (for `private_key_jwt`), parsed and checked once at
registration so the token endpoint only ever loads well-formed public JWKs."""

from __future__ import annotations

import json
from typing import Any

import jwt

from gateway.errors import InvalidRequest


def parse_public_key(body: dict[str, Any]) -> tuple[str, str]:
    """A client's public key from `{"jwk": {...}}` or `{"pem": "..."}` → (alg, public JWK JSON).
    RSA (2048 bits or more) → RS256, EC P-256 → ES256, Ed25519 → EdDSA; private keys refused."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    jwk, pem = body.get("jwk"), body.get("pem")
    if (jwk is None) == (pem is None):
        raise InvalidRequest("jwk or pem: give exactly one")
    if jwk is not None:
        if not isinstance(jwk, dict):
            raise InvalidRequest("jwk: expected a JSON Web Key object")
        if any(k in jwk for k in ("d", "p", "q", "dp", "dq", "qi", "k")):
            raise InvalidRequest("jwk: send the public key only")
        kty, crv = jwk.get("kty"), jwk.get("crv")
        alg = {
            "RSA": "RS256",
            "EC": "ES256" if crv == "P-256" else None,
            "OKP": "EdDSA" if crv == "Ed25519" else None,
        }.get(str(kty))
        if alg is None:
            raise InvalidRequest("jwk: expected an RSA, EC P-256 or Ed25519 key")
        try:
            key = jwt.get_algorithm_by_name(alg).from_jwk(json.dumps(jwk))
        except (jwt.PyJWTError, ValueError, KeyError, TypeError):
            raise InvalidRequest("jwk: not a valid key") from None
    else:
        if not isinstance(pem, str):
            raise InvalidRequest("pem: expected a PEM string")
        if "PRIVATE KEY" in pem:
            raise InvalidRequest("pem: send the public key only")
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, TypeError):
            raise InvalidRequest("pem: not a valid public key") from None
    if isinstance(key, rsa.RSAPublicKey):
        alg = "RS256"
        if key.key_size < 2048:
            raise InvalidRequest("jwk: RSA keys need at least 2048 bits")
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        alg = "ES256"
    elif isinstance(key, ed25519.Ed25519PublicKey):
        alg = "EdDSA"
    else:
        raise InvalidRequest("jwk: expected an RSA, EC P-256 or Ed25519 key")
    public = jwt.get_algorithm_by_name(alg).to_jwk(key, as_dict=True)
    return alg, json.dumps(public)
