"""JWS signature checks under every name the gateway accepts for an algorithm.

RFC 9864 gives EdDSA over Ed25519 the fully-specified name `Ed25519`, and oauth4webapi 3.x
(under openid-client 6) signs with it (issue 9, defect 6). PyJWT knows only `EdDSA`, so this
module keeps a PyJWS of its own that knows both; never the process-global one, so that an
application importing `gateway.client` does not find its PyJWT changed. Either name is bound to
an Ed25519 key: the key type, not the header, decides what verifies.

`invalid_token` is the one translation of PyJWT's verdicts on a token into InvalidToken.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from gateway.errors import InvalidToken

ED25519_NAMES = frozenset({"EdDSA", "Ed25519"})

_JWS = jwt.PyJWS()
_JWS.register_algorithm("Ed25519", OKPAlgorithm())


def family(alg: str) -> str:
    """The name keys are registered under (`Ed25519` is `EdDSA` with its curve named)."""
    return "EdDSA" if alg == "Ed25519" else alg


def verify(token: str, key: Any, alg: str) -> None:
    """Check the signature of a compact JWS with `key` under `alg` (the header's, which the
    caller has already allowed). Raises jwt.InvalidSignatureError (a jwt.PyJWTError) if not."""
    if alg in ED25519_NAMES and not isinstance(key, Ed25519PublicKey):
        raise jwt.InvalidSignatureError("an Ed25519 algorithm needs an Ed25519 key")
    _JWS.decode_complete(token, key, algorithms=[alg])


def invalid_token(exc: jwt.PyJWTError) -> InvalidToken:
    """What the caller is told when `jwt.decode` refuses a token (the description names the
    check that failed, never the key; `reason` is gateway_auth_failures_total's)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return InvalidToken("token expired", reason="expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return InvalidToken("token not valid yet", reason="malformed")
    if isinstance(exc, jwt.InvalidSignatureError):
        return InvalidToken("bad signature", reason="bad_signature")
    return InvalidToken("malformed token", reason="malformed")
