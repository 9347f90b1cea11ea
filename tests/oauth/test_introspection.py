"""POST /oauth/introspect (RFC 7662): a client sees its own tokens; another client's token is
`{"active": false}` unless the caller holds gateway:introspect on /gateway/introspect; expired,
revoked, foreign and garbage tokens are inactive; the caller must authenticate."""

from __future__ import annotations

import time

import httpx

from tests.oauth.conftest import Svc, new_client
from tests.oauth.helpers import (
    assert_issued,
    assert_oauth_error,
    assertion_form,
    basic,
    client_assertion,
    client_jwt,
    ed25519_key,
    forge_token,
    gateway_signing_key,
    post,
)
from tests.support.harness import Gateway


def token_of(gw: Gateway, svc: Svc, **form: str) -> str:
    response = post(
        gw.token_url,
        data={"grant_type": "client_credentials", **form},
        headers={"Authorization": basic(svc.client_id, svc.secret)},
    )
    return str(assert_issued(response)["access_token"])


def introspect(gw: Gateway, caller: Svc, token: str, **extra: str) -> httpx.Response:
    return post(
        f"{gw.proxy_url}/oauth/introspect",
        data={"token": token, **extra},
        headers={"Authorization": basic(caller.client_id, caller.secret)},
    )


def answer(response: httpx.Response) -> dict[str, object]:
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == "no-store", response.headers
    return dict(response.json())


def test_own_token_is_active_with_its_claims(gw: Gateway) -> None:
    svc = new_client(gw, tenant="acme7")
    token = token_of(gw, svc, scope="things.read")
    body = answer(introspect(gw, svc, token, token_type_hint="access_token"))
    assert body["active"] is True
    assert body["client_id"] == body["sub"] == svc.client_id
    assert body["scope"] == "things.read"
    assert body["iss"] == gw.public_url
    assert body["aud"] == gw.public_url
    assert body["tenant"] == "acme7"
    assert isinstance(body["exp"], int) and isinstance(body["iat"], int) and body["exp"] - body["iat"] == 3600
    assert isinstance(body["jti"], str)
    assert str(body.get("token_type", "Bearer")).lower() == "bearer"
    assert "cid" not in body  # the gateway's internal credential reference stays inside


def test_introspection_accepts_every_client_authentication(gw: Gateway) -> None:
    svc = new_client(gw)
    pair = ed25519_key()
    gw.admin().add_public_key(svc.client_id, jwk=pair.public_jwk())
    token = token_of(gw, svc)
    url = f"{gw.proxy_url}/oauth/introspect"
    by_post = post(url, data={"token": token, "client_id": svc.client_id, "client_secret": svc.secret})
    assert answer(by_post)["active"] is True
    form = assertion_form(client_assertion(pair, svc.client_id, gw.public_url), token=token)
    del form["grant_type"]
    assert answer(post(url, data=form))["active"] is True
    assert (
        answer(post(url, json={"token": token, "clientId": svc.client_id, "clientSecret": svc.secret}))[
            "active"
        ]
        is True
    )


def test_another_clients_token_is_inactive_without_gateway_introspect(gw: Gateway) -> None:
    owner = new_client(gw)
    other = new_client(gw)
    token = token_of(gw, owner)
    assert answer(introspect(gw, other, token)) == {"active": False}

    # A permission on something else does not do.
    gw.admin().grant(other.client_id, ["gateway:introspect"], ["/gateway/elsewhere"])
    gw.admin().grant(other.client_id, ["things:read"], ["/gateway/introspect"])
    time.sleep(1.0)  # grant changes reach every worker within 1 s
    assert answer(introspect(gw, other, token)) == {"active": False}

    gw.admin().grant(other.client_id, ["gateway:introspect"], ["/gateway/introspect"])
    deadline = time.monotonic() + 1.0
    while True:
        body = answer(introspect(gw, other, token))
        if body["active"]:
            break
        assert time.monotonic() < deadline, "gateway:introspect did not take effect within 1 s"
        time.sleep(0.05)
    assert body["client_id"] == owner.client_id and body["sub"] == owner.client_id


def test_the_first_admin_may_introspect_any_token(gw: Gateway) -> None:
    """`gateway init` gives the first admin gateway:* on /gateway, which covers introspection."""
    owner = new_client(gw)
    token = token_of(gw, owner)
    admin_secret = gw.admin().create_secret(str(gw.admin_id))["clientSecret"]
    response = post(
        f"{gw.proxy_url}/oauth/introspect",
        data={"token": token},
        headers={"Authorization": basic(str(gw.admin_id), admin_secret)},
    )
    body = answer(response)
    assert body["active"] is True and body["client_id"] == owner.client_id


def test_expired_revoked_foreign_and_garbage_tokens_are_inactive(gw: Gateway) -> None:
    svc = new_client(gw, access_key=True)
    kid, key = gateway_signing_key(gw)
    now = int(time.time())
    # Control: the forging code with the gateway's key and live times gives an active token.
    live = forge_token(gw, svc.client_id, svc.secret_id, key, kid)
    assert answer(introspect(gw, svc, live))["active"] is True
    expired = forge_token(gw, svc.client_id, svc.secret_id, key, kid, iat=now - 7200, exp=now - 3600)
    revoked = token_of(gw, svc)
    assert (
        post(
            f"{gw.proxy_url}/oauth/revoke",
            data={"token": revoked},
            headers={"Authorization": basic(svc.client_id, svc.secret)},
        ).status_code
        == 200
    )
    # Revocation reaches every worker within 1 s (contract §3); introspection follows it.
    deadline = time.monotonic() + 1.0
    while answer(introspect(gw, svc, revoked))["active"]:
        assert time.monotonic() < deadline, "a revoked token is still active 1 s after its revocation"
        time.sleep(0.05)
    tampered = live[:-6] + ("AAAAAA" if not live.endswith("AAAAAA") else "BBBBBB")
    for name, token in (
        ("expired", expired),
        ("revoked", revoked),
        ("tampered signature", tampered),
        ("client-signed JWT", client_jwt(svc.access_key, gw.public_url)),  # no gateway token
        ("access key", svc.access_key),
        ("garbage", "garbage"),
        ("three dots", "a.b.c"),
        ("long", "x" * 5000),
    ):
        assert answer(introspect(gw, svc, token)) == {"active": False}, name


def test_introspection_needs_client_authentication(gw: Gateway) -> None:
    svc = new_client(gw)
    token = token_of(gw, svc)
    url = f"{gw.proxy_url}/oauth/introspect"
    body = assert_oauth_error(post(url, data={"token": token}), 401, "invalid_client")
    assert "active" not in body
    assert_oauth_error(
        post(url, data={"token": token}, headers={"Authorization": f"Bearer {token}"}), 401, "invalid_client"
    )
    response = post(
        url, data={"token": token}, headers={"Authorization": basic(svc.client_id, svc.secret[:-4] + "AAAA")}
    )
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers.get("www-authenticate", "").lower().startswith("basic")
    # Without a token: invalid_request.
    assert_oauth_error(
        post(url, data={}, headers={"Authorization": basic(svc.client_id, svc.secret)}),
        400,
        "invalid_request",
    )
