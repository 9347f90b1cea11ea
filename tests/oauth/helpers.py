"""Token endpoint helpers: requests, response checks, client assertions and keys."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.harness import Gateway
from tests.support.processes import MARK, http_client, new_mark

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ERRORS = {
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
}


def post(url: str, **kwargs: Any) -> httpx.Response:
    """One request over a fresh connection."""
    with http_client(fresh=True) as client:
        return client.post(url, **kwargs)


def basic(client_id: str, secret: str) -> str:
    """client_secret_basic as RFC 6749 §2.3.1 has it: both parts form-urlencoded first."""
    return raw_basic(quote_plus(client_id), quote_plus(secret))


def raw_basic(client_id: str, secret: str) -> str:
    """Basic credentials as most HTTP clients send them (Authlib, curl -u, httpx auth=...):
    not form-urlencoded."""
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def assert_issued(response: httpx.Response) -> dict[str, Any]:
    """RFC 6749 §5.1: 200, no-store, {access_token, token_type Bearer, expires_in, scope}, no
    refresh token."""
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body.get("access_token"), str) and body["access_token"].count(".") == 2, body
    assert body["token_type"] == "Bearer", body
    assert isinstance(body["expires_in"], int) and body["expires_in"] > 0, body
    assert isinstance(body["scope"], str), body
    assert "refresh_token" not in body, body
    return dict(body)


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2: the status, the error code, an error_description, no-store, and nothing
    issued."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers.get("cache-control") == "no-store", response.headers
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert body.get("error") == error, body
    assert isinstance(body.get("error_description"), str) and body["error_description"], body
    assert "access_token" not in body, body
    assert "refresh_token" not in body, body
    return dict(body)


def proxy_get(gw: Gateway, path: str, token: str | None, mark: str | None = None) -> httpx.Response:
    """A proxied GET over a fresh connection, marked for the recorder."""
    headers = {MARK: mark or new_mark()}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with http_client(fresh=True) as client:
        return client.get(gw.proxy_url + path, headers=headers)


def unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


# --- keys -----------------------------------------------------------------------------------------


@dataclass
class KeyPair:
    alg: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def public_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.get_algorithm_by_name(self.alg).to_jwk(self.public, as_dict=True)
        return jwk

    def private_jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.get_algorithm_by_name(self.alg).to_jwk(self.private, as_dict=True)
        return jwk

    def public_pem(self) -> str:
        return str(
            self.public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        )

    def private_pem(self) -> str:
        return str(
            self.private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ).decode()
        )


def rsa_key() -> KeyPair:
    return KeyPair("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key() -> KeyPair:
    return KeyPair("ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key() -> KeyPair:
    return KeyPair("EdDSA", ed25519.Ed25519PrivateKey.generate())


def client_assertion(
    key: KeyPair,
    client_id: str,
    audience: str | list[str],
    *,
    jti: str | None = "",
    lifetime: int = 120,
    kid: str | None = None,
    extra_claims: dict[str, Any] | None = None,
    headers: dict[str, Any] | None = None,
) -> str:
    """A private_key_jwt assertion (RFC 7523 §3): iss = sub = client id, a fresh jti unless
    `jti` is None (omitted) or given."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
    }
    if jti is not None:
        claims["jti"] = jti or uuid.uuid4().hex
    claims.update(extra_claims or {})
    header = dict(headers or {})
    if kid is not None:
        header["kid"] = kid
    return jwt.encode(claims, key.private, algorithm=key.alg, headers=header or None)


def assertion_form(assertion: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")

    return ".".join((part(json.dumps(header).encode()), part(json.dumps(claims).encode()), part(signature)))


# --- the gateway's own signing key (to forge tokens with it, as controls) ---------------------


def gateway_signing_key(gw: Gateway) -> tuple[str, Any]:
    """(kid, private key) of the gateway's current signing key, unsealed with its master key."""
    from gateway.config import load_config
    from gateway.crypto import Sealer, load_master_key
    from gateway.store import open_store

    store = open_store(load_config(gw.config_path).store, run_migrations=False)
    try:
        [current] = [k for k in store.signing_keys() if k.state == "current"]
    finally:
        store.close()
    der = Sealer(load_master_key(gw.master_key_file)).open(
        current.sealed_private, f"signing-key:{current.kid}"
    )
    return current.kid, serialization.load_der_private_key(der, None)


def forge_token(
    gw: Gateway, client_id: str, credential_id: str, key: Any, kid: str, alg: str = "EdDSA", **changes: Any
) -> str:
    """A gateway access token made outside the gateway, with the claims the gateway puts in."""
    now = int(time.time())
    claims = {
        "iss": gw.public_url,
        "sub": client_id,
        "client_id": client_id,
        "aud": gw.public_url,
        "scope": "things.read",
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
        "cid": credential_id,
        **changes,
    }
    return jwt.encode(claims, key, algorithm=alg, headers={"typ": "at+jwt", "kid": kid})


def client_jwt(access_key: str, issuer_origin: str, *, lifetime: int = 300, **changes: Any) -> str:
    """A client-signed JWT (contract §2) made with an access key, with claims changed at will
    (a claim set to None is left out)."""
    from gateway.crypto import parse_access_key

    parsed = parse_access_key(access_key)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": f"{issuer_origin}/v1/clients/{parsed.client_id}",
        "sub": parsed.client_id,
        "client_id": parsed.client_id,
        "aud": f"{parsed.account_id}.accounts.authress.io",
        "iat": now,
        "exp": now + lifetime,
    }
    header = {"kid": parsed.key_id, "typ": "JWT"}
    for name, value in changes.items():
        if name.startswith("header_"):
            header[name[len("header_") :]] = value
        elif value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, parsed.private_key(), algorithm="EdDSA", headers=header)
