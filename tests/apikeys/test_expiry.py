"""Expiry of access keys and client secrets (issue 14 item 1, contract §7): refused on every
worker within 1 s of the expiry instant, warm caches or not; not counted towards the limit of 5;
listed with `expiresAt`."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.identity.keys import Key, client_jwt
from tests.identity.proxying import after_deadline_every_request, call, warm_every_worker
from tests.oauth.helpers import basic
from tests.support.harness import Gateway
from tests.support.processes import Upstream, http_client, new_mark


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def expect_expired(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert "expired" in response.json()["error_description"], response.text


def test_expired_credentials_are_refused_on_every_worker_within_a_second(
    gw: Gateway, recorder: Upstream
) -> None:
    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    lifetime = 12
    created = admin.post(f"/v1/clients/{client_id}/access-keys", json={"expiresIn": lifetime})
    assert created.status_code == 201, created.text
    expires_at = created.json()["expiresAt"]
    assert abs(epoch(expires_at) - (time.time() + lifetime)) < 3
    key = Key.parse(created.json()["accessKey"])
    token = client_jwt(key, gw.public_url, lifetime=600)
    # A gateway token issued on the key dies with it, like one issued on a revoked key.
    with http_client() as http:
        issued = http.post(
            gw.token_url,
            headers={"Authorization": basic(client_id, key.text)},
            data={"grant_type": "client_credentials"},
        )
    assert issued.status_code == 200, issued.text
    credentials = [key.text, token, issued.json()["access_token"]]
    warm_every_worker(gw, recorder, "/whoami", credentials, new_mark())
    left = epoch(expires_at) - time.time()
    assert left > 0.5, f"warming every worker took longer than the key's {lifetime} s lifetime"
    expiry = time.monotonic() + left
    before = after_deadline_every_request(gw, "/whoami", credentials, expiry, expect_expired)
    assert 200 in before  # it did work until then

    # The list still shows it, marked; it no longer counts towards the limit of 5.
    listed = admin.get(f"/v1/clients/{client_id}/access-keys").json()["accessKeys"]
    (shown,) = listed
    assert shown["expiresAt"] == expires_at and shown["expired"] is True
    assert "lastUsed" in shown
    for _ in range(5):
        admin.create_key(client_id)
    sixth = admin.post(f"/v1/clients/{client_id}/access-keys")
    assert sixth.status_code == 409, sixth.text
    # The client's published keys (what Authress's verifyToken fetches) leave it out.
    with http_client() as http:
        jwks = http.get(f"{gw.public_url}/v1/clients/{client_id}/.well-known/openid-configuration/jwks")
    assert key.key_id not in {k["kid"] for k in jwks.json()["keys"]}


def test_client_secret_expires_at_a_given_time(gw: Gateway) -> None:
    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    at = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    created = admin.post(f"/v1/clients/{client_id}/secrets", json={"expiresAt": at})
    assert created.status_code == 201, created.text
    secret = created.json()["clientSecret"]
    assert abs(epoch(created.json()["expiresAt"]) - epoch(at)) < 0.01

    def token() -> httpx.Response:
        with http_client() as http:
            return http.post(
                gw.token_url,
                headers={"Authorization": basic(client_id, secret)},
                data={"grant_type": "client_credentials"},
            )

    assert token().status_code == 200
    deadline = time.monotonic() + (epoch(at) - time.time()) + 1.0
    while time.monotonic() < deadline:
        time.sleep(0.1)
    for _ in range(4):
        assert token().status_code == 401
    listed = admin.get(f"/v1/clients/{client_id}/secrets").json()["secrets"]
    assert [s["expired"] for s in listed] == [True]


def test_expiry_input_is_validated(gw: Gateway) -> None:
    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    for body, field in (
        ({"expiresIn": 0}, "expiresIn"),
        ({"expiresIn": "60"}, "expiresIn"),
        ({"expiresIn": True}, "expiresIn"),
        ({"expiresAt": "tomorrow"}, "expiresAt"),
        ({"expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"expiresAt": "2099-01-01T00:00:00"}, "expiresAt"),  # no time zone
        ({"expiresIn": 60, "expiresAt": "2099-01-01T00:00:00Z"}, "expiresIn"),
    ):
        for kind in ("access-keys", "secrets"):
            response = admin.post(f"/v1/clients/{client_id}/{kind}", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error_description"].startswith(f"{field}:"), response.text
    # Nothing was created by the refused requests.
    assert admin.get(f"/v1/clients/{client_id}/access-keys").json()["accessKeys"] == []
    never = admin.create_key(client_id)
    assert never["expiresAt"] is None


def test_a_key_that_expires_later_works_now(gw: Gateway) -> None:
    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    created = admin.post(f"/v1/clients/{client_id}/access-keys", json={"expiresIn": 3600})
    with http_client() as http:
        assert call(http, gw, "/whoami", created.json()["accessKey"]).status_code == 200
