"""Defect 6: Ed25519 under its RFC 9864 name.

oauth4webapi 3.x (under openid-client 6) signs private_key_jwt assertions for Ed25519 keys with
`alg: "Ed25519"`; the gateway accepted only `EdDSA`. Signed here byte for byte as that client
does (header `{"alg":"Ed25519","kid":…}`), with a registered Ed25519 public key and with an
access key, at the token endpoint; as a client-signed JWT at the proxy; and the metadata lists it.
`Ed25519` is bound to an OKP Ed25519 key like `EdDSA`: an RSA key's assertion under that name fails.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.crypto import parse_access_key
from tests.identity.proxying import bearer
from tests.oauth.helpers import (
    assert_issued,
    assert_oauth_error,
    assertion_form,
    ed25519_key,
    rsa_key,
    unsigned_jwt,
)
from tests.support.harness import Gateway
from tests.support.node import require_node, script
from tests.support.processes import clean_env, http_client


def _sign(private: ed25519.Ed25519PrivateKey, header: dict[str, Any], claims: dict[str, Any]) -> str:
    unsigned = unsigned_jwt(header, claims)
    signing_input = unsigned.rsplit(".", 1)[0]
    signature = private.sign(signing_input.encode())
    return unsigned_jwt(header, claims, signature)


def _assertion_claims(gw: Gateway, client_id: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": gw.public_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }


def test_metadata_lists_ed25519(gateway: Gateway) -> None:
    with http_client() as http:
        metadata = http.get(gateway.public_url + "/.well-known/oauth-authorization-server").json()
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        algs = metadata[f"{name}_auth_signing_alg_values_supported"]
        assert "Ed25519" in algs and "EdDSA" in algs, (name, algs)


def test_private_key_jwt_signed_as_ed25519(gateway: Gateway) -> None:
    admin = gateway.admin()
    client_id, access_key = admin.new_client_with_key()
    registered = ed25519_key()
    added = admin.add_public_key(client_id, jwk=registered.public_jwk())
    with http_client() as http:
        # A registered public key, named by kid, and without a kid (the client's keys are tried).
        for kid in (added["keyId"], None):
            header = {"alg": "Ed25519", **({"kid": kid} if kid else {})}
            assertion = _sign(registered.private, header, _assertion_claims(gateway, client_id))
            assert_issued(http.post(gateway.token_url, data=assertion_form(assertion)))
        # The access key itself.
        parsed = parse_access_key(access_key)
        header = {"alg": "Ed25519", "kid": parsed.key_id}
        assertion = _sign(parsed.private_key(), header, _assertion_claims(gateway, client_id))
        assert_issued(http.post(gateway.token_url, data=assertion_form(assertion)))
        # Bound to the key type: an RSA key registered for the client does not verify "Ed25519".
        rsa = rsa_key()
        rsa_id = admin.add_public_key(client_id, jwk=rsa.public_jwk())["keyId"]
        forged = unsigned_jwt(
            {"alg": "Ed25519", "kid": rsa_id}, _assertion_claims(gateway, client_id), b"x" * 64
        )
        assert_oauth_error(http.post(gateway.token_url, data=assertion_form(forged)), 401, "invalid_client")


def test_client_signed_jwt_as_ed25519_at_the_proxy(gateway: Gateway) -> None:
    client_id, access_key = gateway.admin().new_client_with_key()
    parsed = parse_access_key(access_key)
    now = int(time.time())
    claims = {
        "iss": f"{gateway.public_url}/v1/clients/{client_id}",
        "sub": client_id,
        "aud": gateway.public_url,
        "iat": now,
        "exp": now + 60,
    }
    token = _sign(parsed.private_key(), {"alg": "Ed25519", "kid": parsed.key_id, "typ": "JWT"}, claims)
    with http_client() as http:
        response = http.get(gateway.public_url + "/whoami", headers=bearer(token))
    assert response.status_code == 200, response.text


def test_openid_client_6_private_key_jwt_with_ed25519(gateway: Gateway) -> None:
    """The client that found the defect, run as it is: openid-client 6.9 over oauth4webapi."""
    node = require_node("openid-client", "oauth4webapi")
    admin = gateway.admin()
    client_id, _ = admin.new_client_with_key()
    pair = ed25519_key()
    key_id = admin.add_public_key(client_id, jwk=pair.public_jwk())["keyId"]
    private = {**pair.private_jwk(), "kid": key_id}
    result = subprocess.run(
        [node, str(script("openid_client_ed25519.mjs")), gateway.public_url, client_id],
        input=json.dumps(private),
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tokens = json.loads(result.stdout)
    assert tokens["token_type"].lower() == "bearer" and tokens["access_token"].count(".") == 2, tokens
