"""A service client's discovery document and keys (contract §3), on both listeners: what
Authress's verifyToken fetches to check a client-signed token."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from tests.identity.keys import Key
from tests.support.harness import Gateway
from tests.support.processes import http_client

T = TypeVar("T")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("listener", ["public", "admin"])
def test_client_discovery_and_jwks(gw: Gateway, admin_of: Any, listener: str) -> None:
    admin = admin_of(gw)
    base = gw.public_url if listener == "public" else gw.admin_url
    client_id = admin.create_client()["clientId"]
    keys = [Key.parse(admin.create_key(client_id)["accessKey"]) for _ in range(2)]
    issuer = f"{base}/v1/clients/{client_id}"
    query = {"kid": keys[0].key_id, "iss": base.removeprefix("http://")}

    with http_client() as http:
        for params in ({}, query):
            # No credential needed (verifiers fetch these anonymously); query strings ignored.
            config = http.get(f"{issuer}/.well-known/openid-configuration", params=params)
            assert config.status_code == 200, config.text
            assert config.json()["issuer"] == issuer
            assert config.json()["jwks_uri"] == f"{issuer}/.well-known/openid-configuration/jwks"

            jwks = http.get(f"{issuer}/.well-known/openid-configuration/jwks", params=params)
            assert jwks.status_code == 200, jwks.text
            published = {k["kid"]: k for k in jwks.json()["keys"]}
            assert set(published) == {k.key_id for k in keys}
            for key in keys:
                jwk = published[key.key_id]
                assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
                assert jwk["x"] == _b64url(key.public_raw)
                assert "d" not in jwk, "a private key part must never be published"

        # A revoked key disappears within the revocation bound (documents are cached per client
        # and dropped by the change feed).
        assert admin.delete(f"/v1/clients/{client_id}/access-keys/{keys[0].key_id}").status_code == 204
        jwks = within_a_second(
            lambda: http.get(f"{issuer}/.well-known/openid-configuration/jwks", params=query).json(),
            lambda doc: [k["kid"] for k in doc["keys"]] == [keys[1].key_id],
        )
        assert [k["kid"] for k in jwks["keys"]] == [keys[1].key_id]

        # Unknown clients: 404, both documents.
        unknown = f"{base}/v1/clients/sc_{'Q' * 22}"
        assert http.get(f"{unknown}/.well-known/openid-configuration").status_code == 404
        assert http.get(f"{unknown}/.well-known/openid-configuration/jwks", params=query).status_code == 404
        # And once deleted, the client is unknown.
        assert admin.delete(f"/v1/clients/{client_id}").status_code == 204
        gone = within_a_second(
            lambda: http.get(f"{issuer}/.well-known/openid-configuration/jwks"),
            lambda r: r.status_code == 404,
        )
        assert gone.status_code == 404


def within_a_second(fetch: Callable[[], T], done: Callable[[T], bool]) -> T:
    """`fetch()` again until `done` says so or a second has passed; the last answer."""
    deadline = time.monotonic() + 1.0
    while True:
        answer = fetch()
        if done(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.02)


def test_gateway_jwks_on_both_listeners(gw: Gateway) -> None:
    with http_client() as http:
        public = http.get(f"{gw.public_url}/.well-known/jwks.json")
        alias = http.get(f"{gw.public_url}/.well-known/openid-configuration/jwks")
        admin = http.get(f"{gw.admin_url}/.well-known/jwks.json")
    for response in (public, alias, admin):
        assert response.status_code == 200, response.text
        keys = response.json()["keys"]
        assert keys and all(k.get("kid") and "d" not in k for k in keys)
    assert public.json() == alias.json() == admin.json()
