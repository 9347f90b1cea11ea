"""Token revocation (RFC 7009) and credential revocation that reaches the tokens bought with the
credential (contract §2, §3), on a gateway with two worker processes: every check goes over a
fresh connection, so it lands on either worker, and "refused" means refused by both within 1 s.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.oauth.conftest import Launch, Svc, new_client
from tests.oauth.helpers import (
    JWT_BEARER,
    assert_issued,
    assert_oauth_error,
    assertion_form,
    basic,
    client_assertion,
    client_jwt,
    ec_key,
    post,
    proxy_get,
)
from tests.support.harness import Gateway

WITHIN = 1.0  # seconds (contract §2, §3)
PROBES = 12  # fresh connections after the deadline, spread over the workers


@pytest.fixture(scope="module")
def wgw(launch: Launch) -> Gateway:
    gw = launch("revocation", workers=2)
    assert len(gw.worker_pids()) >= 2  # the two workers (and multiprocessing's resource tracker)
    return gw


def issue(gw: Gateway, client_id: str, secret: str, **form: str) -> str:
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials", **form},
        headers={"Authorization": basic(client_id, secret)},
    )
    return str(assert_issued(response)["access_token"])


def warm(gw: Gateway, *tokens: str) -> None:
    """Use each token on fresh connections, so that the workers have verified (and cached) it."""
    for token in tokens:
        for _ in range(8):
            response = proxy_get(gw, "/things", token)
            assert response.status_code == 200, response.text


def assert_refused_within(gw: Gateway, since: float, *tokens: str) -> None:
    """Each token is refused (401 invalid_token) by `since + WITHIN`, on every worker."""
    deadline = since + WITHIN
    for token in tokens:
        while True:
            sent = time.monotonic()
            response = proxy_get(gw, "/things", token)
            if response.status_code == 401:
                break
            assert response.status_code == 200, response.text
            assert sent < deadline, f"still accepted {sent - since:.2f} s after the revocation"
            time.sleep(0.02)
    time.sleep(max(0.0, deadline - time.monotonic()))
    for token in tokens:
        statuses = []
        for _ in range(PROBES):
            response = proxy_get(gw, "/things", token)
            statuses.append(response.status_code)
            if response.status_code == 401:
                assert response.json()["error"] == "invalid_token"
                assert 'error="invalid_token"' in response.headers.get("www-authenticate", "")
        assert statuses == [401] * PROBES, f"some worker still accepts the token after {WITHIN} s: {statuses}"


def assert_still_accepted(gw: Gateway, *tokens: str) -> None:
    for token in tokens:
        statuses = [proxy_get(gw, "/things", token).status_code for _ in range(PROBES)]
        assert statuses == [200] * PROBES, statuses


def revoke(gw: Gateway, caller: Svc, token: str, **extra: str) -> httpx.Response:
    return post(
        f"{gw.proxy_url}/oauth/revoke",
        data={"token": token, **extra},
        headers={"Authorization": basic(caller.client_id, caller.secret)},
    )


# --- RFC 7009 ------------------------------------------------------------------------------


def test_a_client_revokes_its_own_token(wgw: Gateway) -> None:
    svc = new_client(wgw)
    token = issue(wgw, svc.client_id, svc.secret)
    sibling = issue(wgw, svc.client_id, svc.secret)
    warm(wgw, token, sibling)

    response = revoke(wgw, svc, token, token_type_hint="access_token")
    since = time.monotonic()
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == "no-store"
    assert_refused_within(wgw, since, token)
    # Only that token: the client's other token still works.
    assert_still_accepted(wgw, sibling)
    # Revoking it again is still 200 (RFC 7009 §2.2), and it stays revoked.
    assert revoke(wgw, svc, token).status_code == 200
    assert proxy_get(wgw, "/things", token).status_code == 401


def test_revoking_another_clients_token_does_nothing(wgw: Gateway) -> None:
    owner = new_client(wgw)
    other = new_client(wgw)
    token = issue(wgw, owner.client_id, owner.secret)
    warm(wgw, token)
    response = revoke(wgw, other, token)
    assert response.status_code == 200, response.text
    time.sleep(WITHIN + 0.2)
    assert_still_accepted(wgw, token)


def test_revoking_garbage_is_200(wgw: Gateway) -> None:
    svc = new_client(wgw, access_key=True)
    for junk in ("garbage", "a.b.c", client_jwt(svc.access_key, wgw.public_url), "x" * 3000):
        response = revoke(wgw, svc, junk)
        assert response.status_code == 200, response.text
    # The client's access key (a long-lived credential) is not revoked by being sent as a token.
    assert issue(wgw, svc.client_id, svc.access_key)


def test_revocation_needs_client_authentication(wgw: Gateway) -> None:
    svc = new_client(wgw)
    token = issue(wgw, svc.client_id, svc.secret)
    url = f"{wgw.proxy_url}/oauth/revoke"
    assert_oauth_error(post(url, data={"token": token}), 401, "invalid_client")
    assert_oauth_error(
        post(url, data={"token": token}, headers={"Authorization": f"Bearer {token}"}), 401, "invalid_client"
    )
    response = post(
        url, data={"token": token}, headers={"Authorization": basic(svc.client_id, svc.secret[:-4] + "AAAA")}
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert_oauth_error(
        post(url, data={}, headers={"Authorization": basic(svc.client_id, svc.secret)}),
        400,
        "invalid_request",
    )
    time.sleep(WITHIN)
    assert_still_accepted(wgw, token)


# --- credential revocation reaches the tokens (contract §2) -----------------------------------


def test_revoking_a_client_secret_ends_its_tokens(wgw: Gateway) -> None:
    svc = new_client(wgw)
    second = wgw.admin().create_secret(svc.client_id)
    doomed = issue(wgw, svc.client_id, svc.secret)
    kept = issue(wgw, svc.client_id, second["clientSecret"])
    warm(wgw, doomed, kept)
    response = wgw.admin().delete(f"/v1/clients/{svc.client_id}/secrets/{svc.secret_id}")
    since = time.monotonic()
    assert response.status_code == 204, response.text
    assert_refused_within(wgw, since, doomed)
    assert_still_accepted(wgw, kept)


def test_revoking_an_access_key_ends_its_tokens(wgw: Gateway) -> None:
    svc = new_client(wgw, access_key=True)
    as_secret = issue(wgw, svc.client_id, svc.access_key)
    by_jwt_bearer = str(
        assert_issued(
            post(
                wgw.token_url,
                data={"grant_type": JWT_BEARER, "assertion": client_jwt(svc.access_key, wgw.public_url)},
            )
        )["access_token"]
    )
    kept = issue(wgw, svc.client_id, svc.secret)
    warm(wgw, as_secret, by_jwt_bearer, kept)
    response = wgw.admin().delete(f"/v1/clients/{svc.client_id}/access-keys/{svc.key_id}")
    since = time.monotonic()
    assert response.status_code == 204, response.text
    assert_refused_within(wgw, since, as_secret, by_jwt_bearer)
    assert_still_accepted(wgw, kept)


def test_revoking_a_registered_public_key_ends_its_tokens(wgw: Gateway) -> None:
    svc = new_client(wgw)
    pair = ec_key()
    key_id = wgw.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())["keyId"]
    token = str(
        assert_issued(
            post(wgw.token_url, data=assertion_form(client_assertion(pair, svc.client_id, wgw.public_url)))
        )["access_token"]
    )
    kept = issue(wgw, svc.client_id, svc.secret)
    warm(wgw, token, kept)
    response = wgw.admin().delete(f"/v1/clients/{svc.client_id}/public-keys/{key_id}")
    since = time.monotonic()
    assert response.status_code == 204, response.text
    assert_refused_within(wgw, since, token)
    assert_still_accepted(wgw, kept)
    assert_oauth_error(
        post(wgw.token_url, data=assertion_form(client_assertion(pair, svc.client_id, wgw.public_url))),
        401,
        "invalid_client",
    )


def test_disabling_a_client_ends_all_its_tokens(wgw: Gateway) -> None:
    svc = new_client(wgw, access_key=True)
    bystander = new_client(wgw)
    tokens = (issue(wgw, svc.client_id, svc.secret), issue(wgw, svc.client_id, svc.access_key))
    other = issue(wgw, bystander.client_id, bystander.secret)
    warm(wgw, *tokens, other)
    response = wgw.admin().patch(f"/v1/clients/{svc.client_id}", json={"disabled": True})
    since = time.monotonic()
    assert response.status_code == 200, response.text
    assert_refused_within(wgw, since, *tokens)
    assert_still_accepted(wgw, other)
    # And it gets no new token.
    for secret in (svc.secret, svc.access_key):
        response = post(
            wgw.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(svc.client_id, secret)},
        )
        assert_oauth_error(response, 401, "invalid_client")


def test_deleting_a_client_ends_all_its_tokens(wgw: Gateway) -> None:
    svc = new_client(wgw, access_key=True)
    tokens = (issue(wgw, svc.client_id, svc.secret), issue(wgw, svc.client_id, svc.access_key))
    warm(wgw, *tokens)
    response = wgw.admin().delete(f"/v1/clients/{svc.client_id}")
    since = time.monotonic()
    assert response.status_code == 204, response.text
    assert_refused_within(wgw, since, *tokens)
    response = post(
        wgw.token_url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    )
    assert_oauth_error(response, 401, "invalid_client")
