"""Signing-key rotation (issue 4: "a token survives a signing-key rotation until it expires; a
token signed by a key no longer published is refused"), and tokens signed by keys that are not
the gateway's.

`tokens.rotation_interval` cannot be set below an hour, so rotations here are `gateway keys
rotate-signing`. The retired keys' removal (which the scheduler does once every token they signed
has expired) is done through the store, as the scheduler would do it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import load_config
from gateway.store import open_store
from tests.oauth.conftest import Launch, Svc, new_client
from tests.oauth.helpers import (
    assert_issued,
    basic,
    forge_token,
    gateway_signing_key,
    post,
    proxy_get,
    unsigned_jwt,
)
from tests.support.checks import eventually
from tests.support.harness import Gateway
from tests.support.processes import http_client


@pytest.fixture(scope="module")
def rgw(launch: Launch) -> Gateway:
    return launch("rotation")


def issue(gw: Gateway, svc: Svc) -> str:
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials", "scope": "things.read"},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    )
    return str(assert_issued(response)["access_token"])


def kid_of(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def jwks_kids(gw: Gateway) -> list[str]:
    with http_client() as h:
        return [k["kid"] for k in h.get(gw.proxy_url + "/.well-known/jwks.json").json()["keys"]]


def pyjwk_verify(gw: Gateway, token: str) -> dict[str, Any]:
    client = jwt.PyJWKClient(gw.proxy_url + "/.well-known/jwks.json", cache_jwk_set=False)
    key = client.get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token, key.key, algorithms=["EdDSA", "ES256", "RS256"], audience=gw.public_url
    )
    return claims


def rotate(gw: Gateway, svc: Svc) -> tuple[str, str]:
    """`gateway keys rotate-signing --now` (the next key was published seconds ago, not
    jwks_max_age ago); returns (the new current kid, a token signed by it), once the running
    gateway signs with it (bounded wait)."""
    data = gw.run_json("keys", "rotate-signing", "--now")
    current = data["current"]
    assert {k["kid"]: k["state"] for k in data["keys"]}[current] == "current"
    deadline = time.monotonic() + 3.0
    while True:
        token = issue(gw, svc)
        if kid_of(token) == current:
            return current, token
        assert time.monotonic() < deadline, "the gateway still signs with the old key 3 s after the rotation"
        time.sleep(0.1)


@pytest.fixture
def store(rgw: Gateway) -> Iterator[Any]:
    s = open_store(load_config(rgw.config_path).store, run_migrations=False)
    try:
        yield s
    finally:
        s.close()


def test_rotation_waits_until_the_next_key_was_published_long_enough(rgw: Gateway) -> None:
    """Without --now, a next key published less than tokens.jwks_max_age ago does not sign yet:
    peers holding a cached JWKS would refuse its tokens."""
    before = jwks_kids(rgw)
    result = rgw.run("keys", "rotate-signing", "--json")
    assert result.returncode != 0, result.stdout
    assert "--now" in result.stderr and "jwks_max_age" in result.stderr, result.stderr
    assert jwks_kids(rgw) == before


def test_tokens_survive_a_rotation_and_new_ones_carry_the_new_kid(rgw: Gateway) -> None:
    svc = new_client(rgw)
    before = issue(rgw, svc)
    old_kid = kid_of(before)
    published_before = jwks_kids(rgw)
    assert old_kid in published_before
    assert len(published_before) >= 2, "the next key is not published ahead of its use"

    new_kid, after = rotate(rgw, svc)
    assert new_kid != old_kid
    # The key that signs now was published before it signed (caches never miss it).
    assert new_kid in published_before
    published_after = jwks_kids(rgw)
    assert old_kid in published_after, "the retired key was unpublished while its tokens live"
    assert new_kid in published_after
    assert len(set(published_after) - set(published_before)) == 1, "a new next key is published"

    # The old token still works at the proxy and verifies against the JWKS; so does the new one.
    assert proxy_get(rgw, "/things", before).status_code == 200
    assert proxy_get(rgw, "/things", after).status_code == 200
    assert pyjwk_verify(rgw, before)["sub"] == svc.client_id
    assert pyjwk_verify(rgw, after)["sub"] == svc.client_id

    # A second rotation: the first token is still good.
    newer_kid, newest = rotate(rgw, svc)
    assert newer_kid not in (old_kid, new_kid)
    assert {old_kid, new_kid, newer_kid} <= set(jwks_kids(rgw))
    for token in (before, after, newest):
        assert proxy_get(rgw, "/things", token).status_code == 200
        assert pyjwk_verify(rgw, token)["sub"] == svc.client_id


def drop_retired_keys(gw: Gateway, store: Any, kids: list[str]) -> None:
    """What the scheduler does once every token of a retired key has expired: drop the key."""
    assert store.drop_retired_signing_keys("9999-12-31T00:00:00.000Z") >= 1
    deadline = time.monotonic() + 3.0
    while set(kids) & set(jwks_kids(gw)):
        assert time.monotonic() < deadline, "a dropped key is still published after 3 s"
        time.sleep(0.1)


def test_a_token_whose_key_is_no_longer_published_is_refused(rgw: Gateway, store: Any) -> None:
    svc = new_client(rgw)
    old = issue(rgw, svc)
    old_kid = kid_of(old)
    rotate(rgw, svc)
    assert pyjwk_verify(rgw, old)["sub"] == svc.client_id  # still published after the rotation

    drop_retired_keys(rgw, store, [old_kid])
    response = proxy_get(rgw, "/things", old)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    with pytest.raises(jwt.PyJWKClientError):
        pyjwk_verify(rgw, old)
    # The current key still works.
    assert proxy_get(rgw, "/things", issue(rgw, svc)).status_code == 200


def test_a_token_used_before_its_key_was_unpublished_is_refused_too(rgw: Gateway, store: Any) -> None:
    """The same, for a token the proxy has verified (and cached) before the key went: the key's
    removal must end what was verified with it, not only what comes after."""
    svc = new_client(rgw)
    old = issue(rgw, svc)
    old_kid = kid_of(old)
    rotate(rgw, svc)
    assert proxy_get(rgw, "/things", old).status_code == 200

    drop_retired_keys(rgw, store, [old_kid])
    # The change feed reaches the proxy within the revocation bound.
    eventually("a token whose key is unpublished is refused", lambda: proxy_get(rgw, "/things", old).status_code == 401, 1.5)


# --- forged tokens -------------------------------------------------------------------------


def gateway_current_key(gw: Gateway, store: Any) -> tuple[str, Any]:
    return gateway_signing_key(gw)


def forge(gw: Gateway, svc: Svc, key: Any, kid: str, alg: str = "EdDSA", **changes: Any) -> str:
    return forge_token(gw, svc.client_id, svc.secret_id, key, kid, alg, **changes)


def assert_refused(gw: Gateway, token: str) -> None:
    response = proxy_get(gw, "/things", token)
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers.get("www-authenticate", "")


def test_tokens_signed_by_keys_that_are_not_published_are_refused(rgw: Gateway, store: Any) -> None:
    svc = new_client(rgw)
    kid, real_key = gateway_current_key(rgw, store)
    # Control: the forging code with the gateway's own key makes a token the proxy takes, so the
    # refusals below are about the key and nothing else.
    assert proxy_get(rgw, "/things", forge(rgw, svc, real_key, kid)).status_code == 200

    mine = Ed25519PrivateKey.generate()
    # The gateway's current kid and issuer, but my key.
    assert_refused(rgw, forge(rgw, svc, mine, kid))
    # A kid that is not in the JWKS.
    assert "sig_notpublished00" not in jwks_kids(rgw)
    assert_refused(rgw, forge(rgw, svc, mine, "sig_notpublished00"))
    assert_refused(rgw, forge(rgw, svc, real_key, "sig_notpublished00"))
    # The attacker's public key offered in the header: never trusted.
    public_jwk = jwt.get_algorithm_by_name("EdDSA").to_jwk(mine.public_key(), as_dict=True)
    token = jwt.encode(
        jwt.decode(forge(rgw, svc, mine, kid), options={"verify_signature": False}),
        mine,
        algorithm="EdDSA",
        headers={"typ": "at+jwt", "kid": kid, "jwk": public_jwk, "jku": "http://127.0.0.1:9/jwks.json"},
    )
    assert_refused(rgw, token)


def test_algorithm_confusion_and_unsigned_tokens_are_refused(rgw: Gateway, store: Any) -> None:
    svc = new_client(rgw)
    kid, real_key = gateway_current_key(rgw, store)
    good = forge(rgw, svc, real_key, kid)
    claims = jwt.decode(good, options={"verify_signature": False})

    # HS256 with the published public key as the HMAC secret (the classic confusion attack).
    public_raw = real_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    public_pem = real_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for secret in (public_raw, public_pem):
        assert_refused(rgw, _hs256(claims, secret, kid))

    # alg none, with and without the real signature left in place.
    header = {"alg": "none", "typ": "at+jwt", "kid": kid}
    assert_refused(rgw, unsigned_jwt(header, claims))
    assert_refused(rgw, unsigned_jwt(header, claims, jwt.utils.base64url_decode(good.split(".")[2])))

    # The real signature over changed claims (another client id, more scope).
    head, _, signature = good.split(".")
    changed = dict(claims, scope="things.read things.write admin")
    body = jwt.utils.base64url_encode(json.dumps(changed).encode()).decode()
    assert_refused(rgw, f"{head}.{body}.{signature}")

    # Expired, even though properly signed.
    assert_refused(
        rgw, forge(rgw, svc, real_key, kid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    )


def _hs256(claims: dict[str, Any], secret: bytes, kid: str) -> str:
    header = {"alg": "HS256", "typ": "at+jwt", "kid": kid}
    signing_input = ".".join(
        jwt.utils.base64url_encode(json.dumps(part, separators=(",", ":")).encode()).decode()
        for part in (header, claims)
    )
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode()}"
