from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.errors import InvalidRequest
from gateway.identity import secrets
from gateway.identity.public_keys import parse_public_key
from gateway.oauth.throttle import Throttle


def test_secret_format_checksum_and_hash() -> None:
    secret_id, secret, digest = secrets.new_secret()
    assert secret.startswith("gwcs_" + secret_id + "_") and len(secret) == 5 + 20 + 1 + 32 + 6
    assert secrets.secret_id_of(secret) == secret_id
    assert secrets.matches(secret, digest) and secret not in digest
    flipped = secret[:-7] + ("a" if secret[-7] != "a" else "b") + secret[-6:]
    assert secrets.secret_id_of(flipped) is None  # the checksum catches a changed character
    assert secrets.secret_id_of("gwcs_nope") is None


def test_throttle_counts_per_address_and_per_client_at_that_address() -> None:
    now = [1000.0]
    t = Throttle(per_client=2, per_address=4, clock=lambda: now[0])
    for _ in range(2):
        assert t.retry_after("1.1.1.1", "sc_a") is None
        t.failed("1.1.1.1", "sc_a")
    assert t.retry_after("1.1.1.1", "sc_a") is not None
    assert t.retry_after("2.2.2.2", "sc_a") is None  # the client is not locked out elsewhere
    assert t.retry_after("1.1.1.1", "sc_b") is None
    t.failed("1.1.1.1", "sc_b")
    t.failed("1.1.1.1", None)
    assert t.retry_after("1.1.1.1", "sc_c") is not None  # the address is over its limit
    now[0] += 61
    assert t.retry_after("1.1.1.1", "sc_a") is None  # the window slid past


def _pem(key: object) -> str:
    return (
        key.public_key()
        .public_bytes(  # type: ignore[attr-defined]
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        .decode()
    )


def test_public_keys_are_typed_by_their_key() -> None:
    assert parse_public_key({"pem": _pem(ed25519.Ed25519PrivateKey.generate())})[0] == "EdDSA"
    assert parse_public_key({"pem": _pem(ec.generate_private_key(ec.SECP256R1()))})[0] == "ES256"
    alg, jwk = parse_public_key({"pem": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))})
    assert alg == "RS256" and "d" not in json.loads(jwk)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({}, "give exactly one"),
        ({"jwk": {"kty": "oct", "k": "c2VjcmV0"}}, "public key only"),
        ({"jwk": {"kty": "EC", "crv": "P-384", "x": "a", "y": "b"}}, "expected an RSA"),
        ({"pem": "-----BEGIN PRIVATE KEY-----\nMC4=\n-----END PRIVATE KEY-----"}, "public key only"),
        ({"pem": "not a key"}, "not a valid public key"),
        ({"pem": _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))}, "2048 bits"),
        ({"pem": _pem(ec.generate_private_key(ec.SECP384R1()))}, "expected an RSA"),
    ],
)
def test_bad_public_keys(body: dict[str, object], why: str) -> None:
    with pytest.raises(InvalidRequest, match=why):
        parse_public_key(body)


def test_a_malformed_kid_is_a_401_not_a_crash() -> None:
    import base64
    import types

    from gateway.config import Tokens
    from gateway.crypto import MasterKey, Sealer
    from gateway.errors import InvalidToken
    from gateway.identity.signing import KeyRing, RingHolder, new_signing_key
    from gateway.identity.tokens import TokenService
    from gateway.presented import Presented

    sealer = Sealer(MasterKey(b"m" * 32))
    holder = RingHolder(KeyRing([new_signing_key(sealer)], sealer))
    service = TokenService(holder, types.SimpleNamespace(public_url="http://gw", tokens=Tokens()))  # type: ignore[arg-type]

    def b64(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    for kid in (["a"], {"k": 1}, 7, None):
        token = f"{b64({'alg': 'EdDSA', 'typ': 'at+jwt', 'kid': kid})}.{b64({'iss': 'http://gw', 'cid': 'x'})}.AAAA"
        with pytest.raises(InvalidToken, match="not published"):
            service.verify(Presented(token))
