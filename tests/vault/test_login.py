"""The login flow: authorization code with PKCE S256 against Authlib's authorization server, the
callback on the public listener, and states that are replayed, expired, foreign or made up."""

from __future__ import annotations

import hashlib
import sqlite3
from urllib.parse import urlsplit

from tests.support.harness import Gateway
from tests.support.processes import http_client
from tests.vault.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    Provider,
    add_connection,
    authorize,
    credentials_path,
    query_of,
    service,
)

APP = "https://app.example.com/connected"


def _stored(gw: Gateway, key: str, connection: str, user: str) -> int:
    return gw.admin(key).get(credentials_path(connection, user)).status_code


def test_authorization_url_carries_pkce_s256_and_a_fresh_state(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider, authorizationParams={"prompt": "consent"})
    key = service(gw)
    first = authorize(gw, key, connection, "u1")
    second = authorize(gw, key, connection, "u1")
    assert first.startswith(f"{provider.url}/authorize?")
    params = query_of(first)
    assert params["response_type"] == "code" and params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url of a SHA-256
    assert params["redirect_uri"] == f"{gw.public_url}/oauth/connections/{connection}/callback"
    assert params["scope"] == "calendar.read" and params["prompt"] == "consent"
    assert len(params["state"]) >= 43 and params["state"] != query_of(second)["state"]
    # Only a hash of the state is kept in the store.
    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        hashes = {r[0] for r in db.execute("SELECT state_hash FROM vault_login_states")}
        verifiers = " ".join(r[0] for r in db.execute("SELECT sealed_verifier FROM vault_login_states"))
    finally:
        db.close()
    assert hashlib.sha256(params["state"].encode()).hexdigest() in hashes
    assert params["state"] not in " ".join(hashes) and params["state"] not in verifiers


def test_login_stores_and_redirects_to_an_allowed_page(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    url = authorize(gw, key, connection, "u2", redirectAfter=APP)
    done = provider.login(url, "bob")
    assert done.status_code == 303 and done.headers["location"] == APP
    assert done.headers["cache-control"] == "no-store"
    assert done.headers["referrer-policy"] == "no-referrer"
    assert _stored(gw, key, connection, "u2") == 200


def test_redirect_after_must_be_allowed(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    for target in ("https://evil.example.com/", APP + "/../x", "javascript:alert(1)"):
        response = gw.admin(key).post(
            f"/v1/connections/{connection}/users/u3/authorize", json={"redirectAfter": target}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error_description"].startswith("redirectAfter")


def test_replayed_state_stores_nothing(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    callback = provider.code_redirect(authorize(gw, key, connection, "u4"))
    with http_client() as browser:
        assert browser.get(callback).status_code == 200
        assert gw.admin(key).delete(credentials_path(connection, "u4")).status_code == 204
        replay = browser.get(callback)
    assert replay.status_code == 400 and "state" in replay.json()["error_description"]
    assert _stored(gw, key, connection, "u4") == 404


def test_expired_state_stores_nothing(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    url = authorize(gw, key, connection, "u5")
    state_hash = hashlib.sha256(query_of(url)["state"].encode()).hexdigest()
    db = sqlite3.connect(gw.directory / "gateway.db")
    try:  # ten minutes pass
        with db:
            db.execute(
                "UPDATE vault_login_states SET expires_at = expires_at - 601 WHERE state_hash = ?",
                (state_hash,),
            )
    finally:
        db.close()
    done = provider.login(url)
    assert done.status_code == 400 and "expired" in done.json()["error_description"]
    assert _stored(gw, key, connection, "u5") == 404


def test_foreign_and_made_up_states_store_nothing(gw: Gateway, provider: Provider) -> None:
    first = add_connection(gw, provider)
    second = add_connection(gw, provider)
    key = service(gw)
    callback = provider.code_redirect(authorize(gw, key, first, "u6"))
    parts = urlsplit(callback)
    foreign = f"{gw.public_url}/oauth/connections/{second}/callback?{parts.query}"
    with http_client() as browser:
        answer = browser.get(foreign)
        assert answer.status_code == 400 and "another connection" in answer.json()["error_description"]
        made_up = browser.get(f"{gw.public_url}/oauth/connections/{first}/callback?code=abc&state=made-up")
        assert made_up.status_code == 400
        missing = browser.get(f"{gw.public_url}/oauth/connections/{first}/callback?code=abc")
        assert missing.status_code == 400
        # The foreign use spent the state: the genuine callback no longer works either.
        assert browser.get(callback).status_code == 400
    assert _stored(gw, key, first, "u6") == 404 and _stored(gw, key, second, "u6") == 404


def test_user_refusing_consent_stores_nothing(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    done = provider.login(authorize(gw, key, connection, "u7"), consent=False)
    assert done.status_code == 400 and "access_denied" in done.json()["error_description"]
    assert _stored(gw, key, connection, "u7") == 404


def test_a_tampered_code_verifier_is_refused_by_the_provider(gw: Gateway, provider: Provider) -> None:
    """PKCE is checked by the provider: a code redeemed without our verifier fails there, so a
    stolen code is useless to anyone but the gateway."""
    connection = add_connection(gw, provider)
    key = service(gw)
    callback = provider.code_redirect(authorize(gw, key, connection, "u8"))
    code = query_of(callback)["code"]
    with http_client() as client:
        stolen = client.post(
            f"{provider.url}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": f"{gw.public_url}/oauth/connections/{connection}/callback",
                "code_verifier": "x" * 43,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),  # even with the client's own secret
        )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    with http_client() as browser:
        assert browser.get(callback).status_code == 200
    assert _stored(gw, key, connection, "u8") == 200


def test_a_redirect_dropped_from_the_connection_meanwhile_is_not_followed(
    gw: Gateway, provider: Provider
) -> None:
    body = provider.connection()
    connection = add_connection(gw, provider, connectionId=body["connectionId"])
    key = service(gw)
    url = authorize(gw, key, connection, "u9", redirectAfter=APP)
    changed = gw.admin().put(f"/v1/connections/{connection}", json={**body, "allowedRedirects": []})
    assert changed.status_code == 200, changed.text
    done = provider.login(url)
    assert done.status_code == 200 and "location" not in done.headers  # the plain page instead
    assert "Connected" in done.text
    assert _stored(gw, key, connection, "u9") == 200
