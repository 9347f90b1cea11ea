"""Token issuance and the admin API's client secrets and public keys over both stores (SQLite
and PostgreSQL), and single-use assertion ids across two gateway processes that share one
PostgreSQL store (two replicas: same issuer, same store, same master key, ports of their own)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.oauth.conftest import Launch, new_client
from tests.oauth.helpers import (
    JWT_BEARER,
    assert_issued,
    assert_oauth_error,
    assertion_form,
    basic,
    client_assertion,
    client_jwt,
    ec_key,
    ed25519_key,
    post,
    proxy_get,
    rsa_key,
)
from tests.support.harness import Gateway


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sgw(request: pytest.FixtureRequest, launch: Launch) -> Gateway:
    if request.param == "sqlite":
        return launch("store-sqlite")
    make_schema: Callable[[], str] = request.getfixturevalue("pg_schema")
    gw = launch("store-postgresql", store=make_schema())
    # A second replica of the same deployment: no init, same store, issuer and master key.
    gw.replica = launch(  # type: ignore[attr-defined]
        "store-postgresql-replica",
        store=gw.store,
        init=False,
        public_url=gw.public_url,
        master_key_file=gw.master_key_file,
    )
    gw.replica.admin_key = gw.admin_key  # type: ignore[attr-defined]
    return gw


# --- client secrets ------------------------------------------------------------------------


def test_client_secret_endpoints(sgw: Gateway) -> None:
    api = sgw.admin()
    client_id = api.create_client(name="secrets", scopes=["things.read"])["clientId"]
    made = [api.create_secret(client_id) for _ in range(5)]
    for m in made:
        assert m["clientId"] == client_id
        assert m["clientSecret"].startswith(f"gwcs_{m['secretId']}_"), m  # recognisable, names its id
        assert len(set(m["clientSecret"])) > 10
    assert len({m["clientSecret"] for m in made}) == 5

    # At most 5 active.
    response = api.post(f"/v1/clients/{client_id}/secrets")
    assert response.status_code == 409, response.text
    assert "clientSecret" not in response.text

    # Listed without the secret itself.
    listed = api.get(f"/v1/clients/{client_id}/secrets")
    assert listed.status_code == 200, listed.text
    assert sorted(s["secretId"] for s in listed.json()["secrets"]) == sorted(m["secretId"] for m in made)
    assert all("clientSecret" not in s for s in listed.json()["secrets"])
    for m in made:
        assert m["clientSecret"] not in listed.text

    # Each works; a changed checksum does not.
    for m in made[:2]:
        assert_issued(
            post(
                sgw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(client_id, m["clientSecret"])},
            )
        )
    broken = made[0]["clientSecret"][:-1] + ("A" if made[0]["clientSecret"][-1] != "A" else "B")
    assert_oauth_error(
        post(
            sgw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(client_id, broken)},
        ),
        401,
        "invalid_client",
    )

    # Revoke: 204, then 404; the revoked one no longer counts towards the limit.
    assert api.delete(f"/v1/clients/{client_id}/secrets/{made[0]['secretId']}").status_code == 204
    assert api.delete(f"/v1/clients/{client_id}/secrets/{made[0]['secretId']}").status_code == 404
    assert_oauth_error(
        post(
            sgw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(client_id, made[0]["clientSecret"])},
        ),
        401,
        "invalid_client",
    )
    assert api.post(f"/v1/clients/{client_id}/secrets").status_code == 201
    # Unknown clients and secrets.
    assert api.post(f"/v1/clients/sc_{'Z' * 22}/secrets").status_code == 404
    assert api.delete(f"/v1/clients/{client_id}/secrets/sec_{'Z' * 16}").status_code == 404


def test_secret_endpoints_need_the_admin_permission(sgw: Gateway) -> None:
    api = sgw.admin()
    target = api.create_client(name="target")["clientId"]
    outsider = new_client(sgw, secret=False, access_key=True)
    response = sgw.admin(outsider.access_key).post(f"/v1/clients/{target}/secrets")
    assert response.status_code == 403, response.text
    response = sgw.admin(outsider.access_key).post(
        f"/v1/clients/{target}/public-keys", json={"jwk": ed25519_key().public_jwk()}
    )
    assert response.status_code == 403, response.text
    response = sgw.admin().request(
        "POST", f"/v1/clients/{target}/secrets", headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401, response.text


# --- registered public keys ----------------------------------------------------------------


def test_public_key_endpoints(sgw: Gateway) -> None:
    api = sgw.admin()
    client_id = api.create_client(name="keys")["clientId"]
    pairs = {
        "rsa-jwk": (rsa_key(), "jwk"),
        "ec-jwk": (ec_key(), "jwk"),
        "ed25519-jwk": (ed25519_key(), "jwk"),
        "rsa-pem": (rsa_key(), "pem"),
        "ec-pem": (ec_key(), "pem"),
        "ed25519-pem": (ed25519_key(), "pem"),
    }
    registered: dict[str, str] = {}

    def register(name: str) -> Any:
        pair, form = pairs[name]
        body: dict[str, Any] = {"jwk": pair.public_jwk()} if form == "jwk" else {"pem": pair.public_pem()}
        return api.post(f"/v1/clients/{client_id}/public-keys", json=body)

    for name in list(pairs)[:5]:
        response = register(name)
        assert response.status_code == 201, (name, response.text)
        data = response.json()
        assert data["alg"] == pairs[name][0].alg and data["clientId"] == client_id, data
        assert data["jwk"]["kid"] == data["keyId"]
        registered[name] = data["keyId"]
    # At most 5 active: the sixth waits until one is revoked.
    response = register("ed25519-pem")
    assert response.status_code == 409, response.text
    assert (
        api.delete(f"/v1/clients/{client_id}/public-keys/{registered.pop('ed25519-jwk')}").status_code == 204
    )
    response = register("ed25519-pem")
    assert response.status_code == 201, response.text
    registered["ed25519-pem"] = response.json()["keyId"]
    del pairs["ed25519-jwk"]

    listed = api.get(f"/v1/clients/{client_id}/public-keys")
    assert listed.status_code == 200
    assert sorted(k["keyId"] for k in listed.json()["publicKeys"]) == sorted(registered.values())

    # Every one signs private_key_jwt assertions, with and without its kid.
    for name, (pair, _) in pairs.items():
        assert_issued(
            post(sgw.token_url, data=assertion_form(client_assertion(pair, client_id, sgw.public_url)))
        )
        assert_issued(
            post(
                sgw.token_url,
                data=assertion_form(client_assertion(pair, client_id, sgw.public_url, kid=registered[name])),
            )
        )
    # A kid of another of the client's keys does not verify.
    pair = pairs["ec-jwk"][0]
    assert_oauth_error(
        post(
            sgw.token_url,
            data=assertion_form(client_assertion(pair, client_id, sgw.public_url, kid=registered["ec-pem"])),
        ),
        401,
        "invalid_client",
    )

    # Revoke: 204, then 404; its assertions are refused; the others still work.
    assert api.delete(f"/v1/clients/{client_id}/public-keys/{registered['ec-jwk']}").status_code == 204
    assert api.delete(f"/v1/clients/{client_id}/public-keys/{registered['ec-jwk']}").status_code == 404
    assert_oauth_error(
        post(sgw.token_url, data=assertion_form(client_assertion(pair, client_id, sgw.public_url))),
        401,
        "invalid_client",
    )
    assert_issued(
        post(
            sgw.token_url,
            data=assertion_form(client_assertion(pairs["rsa-jwk"][0], client_id, sgw.public_url)),
        )
    )


def test_public_keys_that_are_refused(sgw: Gateway) -> None:
    api = sgw.admin()
    client_id = api.create_client(name="bad-keys")["clientId"]
    small_rsa = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())

    def pem(key: Any) -> str:
        public = key.public_key()
        return str(
            public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        )

    bad: dict[str, Any] = {
        "private JWK": {"jwk": rsa_key().private_jwk()},
        "private EC JWK": {"jwk": ec_key().private_jwk()},
        "private PEM": {"pem": ed25519_key().private_pem()},
        "RSA 1024": {"pem": pem(small_rsa)},
        "EC P-384": {"pem": pem(p384)},
        "symmetric JWK": {"jwk": {"kty": "oct", "k": "c2VjcmV0"}},
        "garbage PEM": {"pem": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"},
        "garbage JWK": {"jwk": {"kty": "RSA", "n": "x", "e": "y"}},
        "both": {"jwk": ec_key().public_jwk(), "pem": ec_key().public_pem()},
        "neither": {},
        "wrong types": {"jwk": "text", "pem": None},
    }
    for name, body in bad.items():
        response = api.post(f"/v1/clients/{client_id}/public-keys", json=body)
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert response.json()["error"] == "invalid_request", name
    assert api.get(f"/v1/clients/{client_id}/public-keys").json()["publicKeys"] == []
    assert (
        api.post(f"/v1/clients/sc_{'Z' * 22}/public-keys", json={"jwk": ec_key().public_jwk()}).status_code
        == 404
    )


# --- issuance ------------------------------------------------------------------------------


def test_issuance_by_every_grant(sgw: Gateway) -> None:
    svc = new_client(sgw, access_key=True)
    pair = ed25519_key()
    sgw.admin().add_public_key(svc.client_id, pem=pair.public_pem())
    tokens = [
        assert_issued(
            post(
                sgw.token_url,
                data={"grant_type": "client_credentials"},
                headers={"Authorization": basic(svc.client_id, svc.secret)},
            )
        ),
        assert_issued(
            post(
                sgw.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": svc.client_id,
                    "client_secret": svc.access_key,
                },
            )
        ),
        assert_issued(
            post(sgw.token_url, data=assertion_form(client_assertion(pair, svc.client_id, sgw.public_url)))
        ),
        assert_issued(
            post(
                sgw.token_url,
                data={"grant_type": JWT_BEARER, "assertion": client_jwt(svc.access_key, sgw.public_url)},
            )
        ),
    ]
    for issued in tokens:
        assert proxy_get(sgw, "/things", issued["access_token"]).status_code == 200
    # Single use of assertion ids, through the store.
    assertion = client_assertion(pair, svc.client_id, sgw.public_url)
    assert_issued(post(sgw.token_url, data=assertion_form(assertion)))
    assert_oauth_error(post(sgw.token_url, data=assertion_form(assertion)), 401, "invalid_client")


# --- two replicas, one PostgreSQL store ------------------------------------------------------


def replica_of(sgw: Gateway) -> Gateway:
    replica: Gateway | None = getattr(sgw, "replica", None)
    if replica is None:
        pytest.skip("replicas share a PostgreSQL store; one SQLite file is one machine")
    return replica


def test_assertion_ids_are_single_use_across_replicas(sgw: Gateway) -> None:
    b = replica_of(sgw)
    a = sgw
    assert a.proxy_url != b.proxy_url and a.public_url == b.public_url
    svc = new_client(a, access_key=True)
    pair = ec_key()
    a.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())

    # Controls: each replica takes a fresh assertion (so a refusal below is about the jti).
    assert_issued(post(b.token_url, data=assertion_form(client_assertion(pair, svc.client_id, a.public_url))))
    assert_issued(post(a.token_url, data=assertion_form(client_assertion(pair, svc.client_id, a.public_url))))

    first = client_assertion(pair, svc.client_id, a.public_url)
    assert_issued(post(a.token_url, data=assertion_form(first)))
    assert_oauth_error(post(b.token_url, data=assertion_form(first)), 401, "invalid_client")

    second = client_assertion(pair, svc.client_id, f"{a.public_url}/oauth/token")
    assert_issued(post(b.token_url, data=assertion_form(second)))
    assert_oauth_error(post(a.token_url, data=assertion_form(second)), 401, "invalid_client")

    # jwt-bearer assertions with a jti, too.
    bearer = client_jwt(svc.access_key, a.public_url, jti=uuid.uuid4().hex)
    assert_issued(post(a.token_url, data={"grant_type": JWT_BEARER, "assertion": bearer}))
    assert_oauth_error(
        post(b.token_url, data={"grant_type": JWT_BEARER, "assertion": bearer}), 400, "invalid_grant"
    )


def test_tokens_and_revocations_cross_replicas(sgw: Gateway) -> None:
    b = replica_of(sgw)
    a = sgw
    svc = new_client(a)
    issued = assert_issued(
        post(
            a.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        )
    )
    token = issued["access_token"]
    assert proxy_get(b, "/things", token).status_code == 200
    # A secret made through one replica's admin API works at the other at once.
    fresh = b.admin().create_secret(svc.client_id)
    assert_issued(
        post(
            a.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, fresh["clientSecret"])},
        )
    )

    response = post(
        f"{a.proxy_url}/oauth/revoke",
        data={"token": token},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    )
    since = time.monotonic()
    assert response.status_code == 200
    while proxy_get(b, "/things", token).status_code != 401:
        assert time.monotonic() - since < 1.0, "the other replica still accepts a revoked token after 1 s"
        time.sleep(0.02)
