"""The life of a service client over real HTTP, on SQLite and on PostgreSQL, against a gateway
with two worker processes: create, key, call (403), grant, call (200, with identity headers),
and every way of taking access away (record deleted, key revoked, client deleted) refused on
every worker within one second. Also: the five-key limit, and the access key never shown again.
"""

from __future__ import annotations

import base64
import random
import re
import time
import uuid
from typing import Any

import httpx

from tests.identity.deployment import ACCOUNT
from tests.identity.keys import ED25519_B64_PREFIX, Key, client_jwt
from tests.identity.proxying import (
    after_deadline_every_request,
    assert_invalid_token,
    call,
    identity_claims,
    warm_every_worker,
)
from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import Upstream, http_client

CLIENT_ID = re.compile(r"^sc_[A-Za-z0-9]{22}$")
KEY_ID = re.compile(r"^acc_[A-Za-z0-9]{22}$")


def document_path() -> tuple[str, str]:
    """A fresh user (so no other test's grant covers it) and one of its documents."""
    user = str(random.randrange(10**9, 10**10))
    return user, f"/v1/users/{user}/documents/7"


def assert_access_key_format(created: dict[str, Any], client_id: str) -> Key:
    assert set(created) >= {"keyId", "clientId", "accessKey", "generationDate"}, created
    assert KEY_ID.match(created["keyId"]), created["keyId"]
    assert created["clientId"] == client_id
    text = created["accessKey"]
    parts = text.split(".")
    assert len(parts) == 4, text
    assert parts[:3] == [client_id, created["keyId"], ACCOUNT]
    encoded = parts[3]
    assert len(encoded) == 64 and "=" not in encoded, encoded
    assert encoded.startswith(ED25519_B64_PREFIX)
    assert re.fullmatch(r"[A-Za-z0-9+/]{64}", encoded)
    assert len(base64.b64decode(encoded, validate=True)) == 48
    key = Key.parse(text)
    assert len(key.public_raw) == 32  # a loadable Ed25519 PKCS#8 key
    return key


def expect_status(status: int, error: str | None = None) -> Any:
    def check(response: httpx.Response) -> None:
        assert response.status_code == status, (response.status_code, response.text)
        if error is not None:
            assert response.json()["error"] == error

    return check


def test_full_life_of_a_client(gw: Gateway, recorder: Upstream, admin_of: Any, mark: str) -> None:
    admin = admin_of(gw)
    response = admin.post("/v1/clients", json={"name": "life", "scopes": ["documents.read", "reports.read"]})
    assert response.status_code == 201, response.text
    created = response.json()
    client_id = created["clientId"]
    assert CLIENT_ID.match(client_id), client_id
    assert created["name"] == "life" and created["createdTime"]

    response = admin.post(f"/v1/clients/{client_id}/access-keys")
    assert response.status_code == 201, response.text
    key = assert_access_key_format(response.json(), client_id)
    token = client_jwt(key, gw.public_url)

    user, path = document_path()
    with http_client() as http:
        # A new key works on the first request after its creation: authenticated, but no grant.
        for credential in (key.text, token):
            denied = call(http, gw, path, credential, mark)
            assert denied.status_code == 403, denied.text
            assert denied.json()["error"] == "access_denied"
        assert recorder.marked(mark) == []

        role_id = admin.create_role(["documents:read"])
        admin.create_record([client_id], [role_id], [f"/users/{user}"])
        granted_at = time.monotonic()
        after_deadline_every_request(
            gw, path, [key.text, token], granted_at, expect_status(200), requests_each=0
        )
        for credential, method in ((key.text, "access_key"), (token, "client_jwt")):
            one = f"{mark}-{method}"
            response = call(http, gw, path, credential, one)
            assert response.status_code == 200, response.text
            (seen,) = recorder.marked(one)
            assert headers_named(seen, "x-gateway-client-id") == [client_id]
            assert headers_named(seen, "x-gateway-subject") == [client_id]
            assert headers_named(seen, "x-gateway-auth-method") == [method]
            assert headers_named(seen, "x-gateway-route") == ["read-document"]
            assert sorted(headers_named(seen, "x-gateway-scopes")[0].split()) == [
                "documents.read",
                "reports.read",
            ]
            assert headers_named(seen, "x-gateway-tenant") == []
            # Neither a static key nor a client-signed JWT is forwarded.
            assert headers_named(seen, "authorization") == []
            assert not any(key.encoded in v or token in v for _, v in seen["headers"])
            (identity,) = headers_named(seen, "x-gateway-identity")
            head, claims = identity_claims(gw, identity, audience="documents")
            now = time.time()
            assert head["typ"] == "gateway-identity+jwt"
            assert now - 1 < claims["exp"] <= now + 60
            assert claims["sub"] == client_id and claims["client_id"] == client_id
            assert claims["route"] == "read-document"
            assert claims["method"] == "GET" and claims["path"] == path
            assert claims["aud"] == "documents"
            assert isinstance(claims["jti"], str) and claims["jti"]


def test_granted_within_one_second_on_every_worker(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    client_id, access_key = admin.new_client_with_key()
    user, path = document_path()
    with http_client() as http:
        assert call(http, gw, path, access_key).status_code == 403
    role_id = admin.create_role(["documents:read"])
    admin.create_record([client_id], [role_id], [f"/users/{user}"])
    after_deadline_every_request(gw, path, [access_key], time.monotonic(), expect_status(200))


def _allowed_client(gw: Gateway, admin: Any, keys: int = 1) -> tuple[str, list[str], str, str]:
    client_id = admin.create_client()["clientId"]
    access_keys = [admin.create_key(client_id)["accessKey"] for _ in range(keys)]
    user, path = document_path()
    _, record_id = admin.grant(client_id, ["documents:read"], [f"/users/{user}"])
    return client_id, access_keys, path, record_id


def _wait_allowed(gw: Gateway, path: str, credentials: list[str]) -> None:
    with http_client() as http:
        deadline = time.monotonic() + 1.0
        while not all(call(http, gw, path, c).status_code == 200 for c in credentials):
            assert time.monotonic() < deadline, "a grant did not take effect within 1 s"
            time.sleep(0.02)


def test_deleted_record_denied_within_one_second(
    gw: Gateway, recorder: Upstream, admin_of: Any, mark: str
) -> None:
    admin = admin_of(gw)
    _, (access_key,), path, record_id = _allowed_client(gw, admin)
    token = client_jwt(Key.parse(access_key), gw.public_url)
    _wait_allowed(gw, path, [access_key, token])
    warm_every_worker(gw, recorder, path, [access_key, token], mark)

    response = admin.delete(f"/v1/records/{record_id}")
    assert response.status_code == 204, response.text
    after_deadline_every_request(
        gw,
        path,
        [access_key, token],
        time.monotonic(),
        expect_status(403, "access_denied"),
        mark_after=f"{mark}-after",
    )
    assert recorder.marked(f"{mark}-after") == []
    assert admin.get(f"/v1/records/{record_id}").status_code == 404


def test_revoked_key_refused_within_one_second(
    gw: Gateway, recorder: Upstream, admin_of: Any, mark: str
) -> None:
    admin = admin_of(gw)
    client_id, (revoked, kept), path, _ = _allowed_client(gw, admin, keys=2)
    revoked_token = client_jwt(Key.parse(revoked), gw.public_url)
    kept_token = client_jwt(Key.parse(kept), gw.public_url)
    _wait_allowed(gw, path, [revoked, revoked_token, kept])
    warm_every_worker(gw, recorder, path, [revoked, revoked_token], mark)

    key_id = Key.parse(revoked).key_id
    response = admin.delete(f"/v1/clients/{client_id}/access-keys/{key_id}")
    assert response.status_code == 204, response.text
    after_deadline_every_request(
        gw, path, [revoked, revoked_token], time.monotonic(), assert_invalid_token, mark_after=f"{mark}-after"
    )
    assert recorder.marked(f"{mark}-after") == []
    # Only that key: the client's other key (static and as a JWT) still works.
    with http_client(fresh=True) as fresh:
        for credential in (kept, kept_token):
            assert call(fresh, gw, path, credential).status_code == 200
    # Revoking it again: it is not an active key any more.
    assert admin.delete(f"/v1/clients/{client_id}/access-keys/{key_id}").status_code == 404


def test_deleted_client_refused_within_one_second(
    gw: Gateway, recorder: Upstream, admin_of: Any, mark: str
) -> None:
    admin = admin_of(gw)
    client_id, (access_key,), path, _ = _allowed_client(gw, admin)
    token = client_jwt(Key.parse(access_key), gw.public_url)
    _wait_allowed(gw, path, [access_key, token])
    warm_every_worker(gw, recorder, path, [access_key, token], mark)

    response = admin.delete(f"/v1/clients/{client_id}")
    assert response.status_code == 204, response.text
    after_deadline_every_request(
        gw, path, [access_key, token], time.monotonic(), assert_invalid_token, mark_after=f"{mark}-after"
    )
    assert recorder.marked(f"{mark}-after") == []
    assert admin.get(f"/v1/clients/{client_id}").status_code == 404
    assert admin.delete(f"/v1/clients/{client_id}").status_code == 404


def test_disabled_client_refused_within_one_second(
    gw: Gateway, recorder: Upstream, admin_of: Any, mark: str
) -> None:
    admin = admin_of(gw)
    client_id, (access_key,), path, _ = _allowed_client(gw, admin)
    _wait_allowed(gw, path, [access_key])
    warm_every_worker(gw, recorder, path, [access_key], mark)
    response = admin.patch(f"/v1/clients/{client_id}", json={"disabled": True})
    assert response.status_code == 200 and response.json()["disabled"] is True, response.text
    after_deadline_every_request(gw, path, [access_key], time.monotonic(), assert_invalid_token)


# --- the five-key limit --------------------------------------------------------------------------


def test_sixth_active_key_is_refused(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    client_id = admin.create_client()["clientId"]
    keys = [admin.create_key(client_id) for _ in range(5)]
    response = admin.post(f"/v1/clients/{client_id}/access-keys")
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"] == "conflict"
    assert "5" in body["error_description"] and "revoke" in body["error_description"].lower()
    assert "accessKey" not in body
    listed = admin.get(f"/v1/clients/{client_id}/access-keys").json()["accessKeys"]
    assert len(listed) == 5

    revoked = keys[2]["keyId"]
    assert admin.delete(f"/v1/clients/{client_id}/access-keys/{revoked}").status_code == 204
    sixth = admin.create_key(client_id)  # revoked keys do not count
    listed = admin.get(f"/v1/clients/{client_id}/access-keys").json()["accessKeys"]
    ids = [k["keyId"] for k in listed]
    assert revoked not in ids
    assert sorted(ids) == sorted([k["keyId"] for k in keys if k["keyId"] != revoked] + [sixth["keyId"]])
    shown = admin.get(f"/v1/clients/{client_id}").json()["verificationKeys"]
    assert revoked not in [k["keyId"] for k in shown] and len(shown) == 5
    assert admin.post(f"/v1/clients/{client_id}/access-keys").status_code == 409


# --- the access key is shown once ----------------------------------------------------------------


def test_access_key_never_shown_again(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    client_id = admin.create_client(name=f"secret-{uuid.uuid4().hex[:6]}")["clientId"]
    created = admin.create_key(client_id)
    access_key = created["accessKey"]
    key = Key.parse(access_key)
    secrets = [access_key, key.encoded, key.encoded[len(ED25519_B64_PREFIX) :]]
    user, path = document_path()
    admin.grant(client_id, ["documents:read"], [f"/users/{user}"])
    _wait_allowed(gw, path, [access_key])

    own = gw.admin(access_key)
    seen: list[str] = []
    with http_client() as http:
        # Use the key in every way a log line might catch it.
        seen.append(call(http, gw, path, access_key).text)
        seen.append(http.get(gw.public_url + path, params={"access_token": access_key}).text)
        seen.append(http.get(gw.public_url + path, headers={"Authorization": f"Basic {access_key}"}).text)
        seen.append(call(http, gw, path, access_key + "x").text)
        seen.append(call(http, gw, "/whoami", access_key).text)
        seen.append(own.get("/v1/clients").text)  # 403, no grants on /gateway
        seen.append(admin.get(f"/v1/clients/{client_id}").text)
        seen.append(admin.get(f"/v1/clients/{client_id}/access-keys").text)
        seen.append(admin.get("/v1/clients", params={"limit": 100}).text)
        assert admin.delete(f"/v1/clients/{client_id}/access-keys/{key.key_id}").status_code == 204
        seen.append(call(http, gw, path, access_key).text)  # revoked
        seen.append(admin.get(f"/v1/clients/{client_id}").text)
        audit: list[str] = []
        cursor: str | None = None
        for _ in range(50):
            page = admin.get("/v1/audit", params={"limit": 500, **({"cursor": cursor} if cursor else {})})
            assert page.status_code == 200, page.text
            audit.append(page.text)
            nxt = page.json()["pagination"]["next"]
            if not nxt:
                break
            cursor = nxt["cursor"]
        # The audit log does record the key's creation and revocation, by key id.
        assert audit[0].count(key.key_id) >= 2, "the audit log should name the key it created and revoked"
        seen += audit
        seen.append(http.get(gw.admin_url + "/metrics").text)
    own.close()
    time.sleep(0.2)  # let the workers' log lines reach the file
    seen.append(gw.log())
    for text in seen:
        for secret in secrets:
            assert secret not in text, f"the access key (or its private part) leaked: ...{text[:300]}"


def test_unknown_key_id_cannot_be_revoked_and_keys_stay_with_their_client(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    a = admin.create_client()["clientId"]
    b = admin.create_client()["clientId"]
    key_b = admin.create_key(b)["keyId"]
    # A's id with B's key id: not A's key, so nothing is revoked.
    assert admin.delete(f"/v1/clients/{a}/access-keys/{key_b}").status_code == 404
    assert [k["keyId"] for k in admin.get(f"/v1/clients/{b}/access-keys").json()["accessKeys"]] == [key_b]
    assert admin.post(f"/v1/clients/sc_{'x' * 22}/access-keys").status_code == 404


def test_callers_sharing_one_connection_are_each_decided_as_themselves(
    gw: Gateway, recorder: Upstream, admin_of: Any, mark: str
) -> None:
    """A keep-alive connection remembers its last request's decision (gateway.pipeline.decide):
    requests that alternate credentials on it, as a client library shared by two services might
    send them, are each answered for their own caller, and a revoked key on it is refused."""
    admin = admin_of(gw)
    a, (a_key, a_spare), path, _ = _allowed_client(gw, admin, keys=2)
    b, (b_key,), b_path, _ = _allowed_client(gw, admin)
    _wait_allowed(gw, path, [a_key, a_spare])
    _wait_allowed(gw, b_path, [b_key])
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(limits=limits, timeout=10) as one:  # every request on the same connection
        for i in range(3):
            for credential, target, status in ((a_key, path, 200), (b_key, path, 403), (b_key, b_path, 200)):
                response = call(one, gw, target, credential, mark=f"{mark}-{i}-{credential[:26]}-{target}")
                assert response.status_code == status, (credential[:26], target, response.text)
        for i in range(3):
            assert [headers_named(r, "x-gateway-client-id") for r in recorder.marked(f"{mark}-{i}-{a_key[:26]}-{path}")] == [[a]]
            assert recorder.marked(f"{mark}-{i}-{b_key[:26]}-{path}") == []
            assert [headers_named(r, "x-gateway-client-id") for r in recorder.marked(f"{mark}-{i}-{b_key[:26]}-{b_path}")] == [[b]]
        key_id = Key.parse(a_key).key_id
        assert admin.delete(f"/v1/clients/{a}/access-keys/{key_id}").status_code == 204
        deadline = time.monotonic() + 1.0
        while call(one, gw, path, a_key).status_code == 200:
            assert time.monotonic() < deadline, "a revoked key passed on a kept-alive connection after 1 s"
            time.sleep(0.02)
        assert_invalid_token(call(one, gw, path, a_key))
        assert call(one, gw, path, a_spare).status_code == 200
