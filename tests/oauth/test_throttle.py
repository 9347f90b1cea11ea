"""Throttling of failed client authentications (issue 4, item 7): past `failures_per_client`
failures for one client id from one address, or `failures_per_address` failures from one address,
the token endpoint answers 429 with Retry-After before checking anything.

The per-client limit is keyed by client id AND source address: an attacker failing for a client
id from its own addresses never locks the real client out at the client's address. A second
address is not easy to have on loopback, so what is shown here is the other half of that design:
at the same address, a *different* client id is still served until the per-address limit. Each
test runs its own gateway (one worker: the counts are per worker process).
"""

from __future__ import annotations

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.oauth.conftest import Launch, new_client
from tests.oauth.helpers import (
    JWT_BEARER,
    assert_issued,
    assert_oauth_error,
    assertion_form,
    basic,
    client_assertion,
    client_jwt,
    ed25519_key,
    post,
)
from tests.support.harness import Gateway

PER_CLIENT = 3
PER_ADDRESS = 8
THROTTLE = {"failures_per_client": PER_CLIENT, "failures_per_address": PER_ADDRESS}


def attempt(gw: Gateway, client_id: str, secret: str) -> httpx.Response:
    return post(
        gw.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(client_id, secret)},
    )


def assert_throttled(response: httpx.Response) -> None:
    assert response.status_code == 429, (response.status_code, response.text)
    retry_after = response.headers.get("retry-after", "")
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 61, response.headers
    assert response.headers.get("cache-control") == "no-store"
    body = response.json()
    assert body["error"] and "access_token" not in body


def test_per_client_limit(launch: Launch) -> None:
    gw = launch("throttle-client", throttle=THROTTLE)
    victim = new_client(gw)
    neighbour = new_client(gw)
    pair = ed25519_key()
    gw.admin().add_public_key(victim.client_id, jwk=pair.public_jwk())

    for _ in range(PER_CLIENT):
        assert_oauth_error(attempt(gw, victim.client_id, victim.secret[:-4] + "AAAA"), 401, "invalid_client")
    # Now even the right secret is turned away, from this address.
    assert_throttled(attempt(gw, victim.client_id, victim.secret))
    # So is a private_key_jwt assertion claiming that client, and client_secret_post, and the
    # introspection and revocation endpoints.
    assert_throttled(
        post(gw.token_url, data=assertion_form(client_assertion(pair, victim.client_id, gw.public_url)))
    )
    assert_throttled(
        post(
            gw.token_url,
            data={
                "grant_type": "client_credentials",
                "client_id": victim.client_id,
                "client_secret": victim.secret,
            },
        )
    )
    assert_throttled(
        post(
            f"{gw.proxy_url}/oauth/introspect",
            data={"token": "x"},
            headers={"Authorization": basic(victim.client_id, victim.secret)},
        )
    )
    assert_throttled(
        post(
            f"{gw.proxy_url}/oauth/revoke",
            data={"token": "x"},
            headers={"Authorization": basic(victim.client_id, victim.secret)},
        )
    )

    # The per-client count is keyed by client id and address: another client at this very
    # address is not locked out (the address has PER_CLIENT failures, under PER_ADDRESS).
    assert_issued(attempt(gw, neighbour.client_id, neighbour.secret))


def test_unknown_client_ids_are_throttled_alike(launch: Launch) -> None:
    """A client id that does not exist gets the same 401s, then the same 429: the throttle does
    not tell which ids exist either."""
    gw = launch("throttle-unknown", throttle=THROTTLE)
    real = new_client(gw)
    ghost = "sc_" + "G" * 22
    answers = {}
    for client_id in (real.client_id, ghost):
        statuses = [attempt(gw, client_id, "gwcs_wrong").status_code for _ in range(PER_CLIENT + 1)]
        answers[client_id] = statuses
    assert answers[real.client_id] == answers[ghost] == [401] * PER_CLIENT + [429]


def test_per_address_limit(launch: Launch) -> None:
    gw = launch("throttle-address", throttle=THROTTLE)
    bystander = new_client(gw)
    # Failures spread over many client ids, none of which reaches its own limit.
    for i in range(PER_ADDRESS):
        response = attempt(gw, "sc_" + f"{i:02d}" * 11, "gwcs_wrong")
        assert_oauth_error(response, 401, "invalid_client")
    # Now any client from this address waits, with the right secret too, or with none at all.
    assert_throttled(attempt(gw, bystander.client_id, bystander.secret))
    assert_throttled(attempt(gw, "sc_" + "N" * 22, "gwcs_whatever"))
    assert_throttled(post(gw.token_url, data={"grant_type": "client_credentials"}))
    # The admin API and the proxy are not the token endpoint: they are not throttled by this.
    assert gw.admin().get("/v1/clients").status_code == 200


def test_jwt_bearer_failures_are_throttled_too(launch: Launch) -> None:
    """A jwt-bearer assertion authenticates the client: failed ones count like failed secrets."""
    gw = launch("throttle-jwt-bearer", throttle=THROTTLE)
    victim = new_client(gw, access_key=True)
    neighbour = new_client(gw, access_key=True)
    stranger = Ed25519PrivateKey.generate()
    forged = jwt.decode(client_jwt(victim.access_key, gw.public_url), options={"verify_signature": False})
    for _ in range(PER_CLIENT):
        bad = jwt.encode(forged, stranger, algorithm="EdDSA", headers={"kid": victim.key_id})
        assert_oauth_error(
            post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": bad}), 400, "invalid_grant"
        )
    good = client_jwt(victim.access_key, gw.public_url)
    assert_throttled(post(gw.token_url, data={"grant_type": JWT_BEARER, "assertion": good}))
    assert_throttled(attempt(gw, victim.client_id, victim.secret))
    assert_issued(
        post(
            gw.token_url,
            data={"grant_type": JWT_BEARER, "assertion": client_jwt(neighbour.access_key, gw.public_url)},
        )
    )
