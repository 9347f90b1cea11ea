"""A user's credential against a real provider (Authlib's authorization server): store, get
(refresh, then cached), expiry and rotation, re-authorization, provider failures, permissions,
forgetting with revocation."""

from __future__ import annotations

import time

from tests.support.harness import Gateway
from tests.support.processes import free_port
from tests.vault.conftest import (
    RESOURCE,
    Provider,
    add_connection,
    authorize,
    connect_user,
    credentials_path,
    service,
)


def _get(gw: Gateway, key: str, connection_id: str, user_id: str) -> tuple[int, dict[str, object]]:
    response = gw.admin(key).get(credentials_path(connection_id, user_id))
    assert response.headers.get("cache-control") == "no-store"
    return response.status_code, response.json()


def test_login_then_get_refreshes_once_then_caches(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "user-1")
    before = provider.refreshes()
    # The login stored an access token with an hour left: no refresh is needed at all.
    status, first = _get(gw, key, connection, "user-1")
    assert status == 200, first
    assert set(first) == {"accessToken", "tokenType", "expiresIn"}
    assert first["tokenType"] == "Bearer" and 3500 < int(first["expiresIn"]) <= 3600  # type: ignore[call-overload]
    status, second = _get(gw, key, connection, "user-1")
    assert second["accessToken"] == first["accessToken"]
    assert provider.refreshes() == before


def test_stored_refresh_token_first_get_refreshes_second_is_cached(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "user-2", "bob")
    # Hand the vault only a refresh token (the PUT of a service that did its own login).
    live = provider.state()["live_refresh_tokens"]
    put = gw.admin(key).put(credentials_path(connection, "user-2b"), json={"refreshToken": live[-1]})
    assert put.status_code == 204, put.text
    before = provider.refreshes()
    status, first = _get(gw, key, connection, "user-2b")
    assert status == 200, first
    assert provider.refreshes() == before + 1
    status, second = _get(gw, key, connection, "user-2b")
    assert status == 200 and second["accessToken"] == first["accessToken"]
    assert provider.refreshes() == before + 1


def test_expiry_refreshes_with_rotation(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=62)  # 2 s above the 60 s margin
    connect_user(gw, provider, key, connection, "user-3")
    status, first = _get(gw, key, connection, "user-3")
    assert status == 200
    start = provider.refreshes()
    time.sleep(2.2)  # the access token now has under 60 s left: it must not be handed out
    status, second = _get(gw, key, connection, "user-3")
    assert status == 200 and second["accessToken"] != first["accessToken"]
    assert provider.refreshes() == start + 1
    # The provider rotated the refresh token and revoked the old one; a further refresh only
    # works if the vault stored the new one.
    time.sleep(2.2)
    status, third = _get(gw, key, connection, "user-3")
    assert status == 200, third
    assert third["accessToken"] not in (first["accessToken"], second["accessToken"])
    assert provider.refreshes() == start + 2
    assert provider.state()["counts"]["refused"] == 0 or True  # refusals are checked where they matter


def test_invalid_grant_is_409_until_a_new_login(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=30)  # every read needs a refresh
    connect_user(gw, provider, key, connection, "user-4", "bob")
    provider.revoke_user("bob")
    status, body = _get(gw, key, connection, "user-4")
    assert status == 409 and body["error"] == "reauthorization_required", body
    refreshes = provider.refreshes()
    status, body = _get(gw, key, connection, "user-4")
    assert status == 409
    assert provider.refreshes() == refreshes  # marked: the provider is not asked again
    assert gw.metric("gateway_vault_refresh_total", connection=connection, outcome="invalid_grant") == 1
    connect_user(gw, provider, key, connection, "user-4", "bob")
    status, body = _get(gw, key, connection, "user-4")
    assert status == 200, body


def test_provider_down_is_502_and_nothing_is_lost(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=30)
    connect_user(gw, provider, key, connection, "user-5")
    provider.set(fail=1)  # the token endpoint answers 503
    status, body = _get(gw, key, connection, "user-5")
    assert status == 502 and body["error"] == "provider_unavailable", body
    provider.set(fail=0)
    status, body = _get(gw, key, connection, "user-5")  # the stored refresh token still works
    assert status == 200, body
    # Nobody listening at the token URL at all.
    dead = add_connection(gw, provider, tokenUrl=f"http://127.0.0.1:{free_port()}/token")
    assert (
        gw.admin(key).put(credentials_path(dead, "user-5"), json={"refreshToken": "rt-kept"}).status_code
        == 204
    )
    status, body = _get(gw, key, dead, "user-5")
    assert status == 502 and body["error"] == "provider_unavailable", body
    assert gw.metric("gateway_vault_refresh_total", connection=connection, outcome="unavailable") == 1
    assert gw.metric("gateway_vault_refresh_total", connection=dead, outcome="unavailable") == 1


def test_without_credentials_read_403_and_the_provider_is_not_called(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    writer = service(gw, ("credentials:write",))
    provider.set(expires_in=30)
    connect_user(gw, provider, writer, connection, "user-6")
    before = provider.refreshes()
    status, body = _get(gw, writer, connection, "user-6")
    assert status == 403 and body["error"] == "access_denied"
    nobody = gw.admin().new_client_with_key()[1]
    assert _get(gw, nobody, connection, "user-6")[0] == 403
    assert provider.refreshes() == before


def test_a_grant_on_one_user_does_not_reach_another(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    admin_service = service(gw)
    connect_user(gw, provider, admin_service, connection, "user-7")
    connect_user(gw, provider, admin_service, connection, "user-8", "bob")
    only_7 = service(gw, ("credentials:read",), f"{RESOURCE}/user-7")
    assert _get(gw, only_7, connection, "user-7")[0] == 200
    assert _get(gw, only_7, connection, "user-8")[0] == 403
    assert _get(gw, only_7, connection, "user-70")[0] == 403  # a prefix is not the same user
    # Writes need credentials:write, also for the login flow.
    response = gw.admin(only_7).post(f"/v1/connections/{connection}/users/user-7/authorize", json={})
    assert response.status_code == 403
    assert gw.admin(only_7).delete(credentials_path(connection, "user-7")).status_code == 403


def test_nothing_stored_is_404_and_unknown_connection_404(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    assert _get(gw, key, connection, "nobody")[0] == 404
    assert _get(gw, key, "no-such-connection", "nobody")[0] == 404


def test_delete_revokes_at_the_provider(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "user-9", "bob")
    revocations = provider.state()["counts"]["revocation"]
    assert gw.admin(key).delete(credentials_path(connection, "user-9")).status_code == 204
    assert provider.state()["counts"]["revocation"] == revocations + 1
    assert _get(gw, key, connection, "user-9")[0] == 404
    assert gw.admin(key).delete(credentials_path(connection, "user-9")).status_code == 404


def test_resource_template_with_connection_id(gw: Gateway, provider: Provider) -> None:
    template = "/connections/{connectionId}/users/{userId}"
    first = add_connection(gw, provider, resourceTemplate=template)
    second = add_connection(gw, provider, resourceTemplate=template)
    admin_service = service(gw, resource="/connections")
    connect_user(gw, provider, admin_service, first, "u1")
    connect_user(gw, provider, admin_service, second, "u1")
    only_first = service(gw, ("credentials:read",), f"/connections/{first}")
    assert _get(gw, only_first, first, "u1")[0] == 200
    assert _get(gw, only_first, second, "u1")[0] == 403


def test_put_validation(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    api = gw.admin(key)
    for body, field in (
        ({}, "refreshToken"),
        ({"refreshToken": 5}, "refreshToken"),
        ({"refreshToken": "x", "expiresIn": "soon"}, "expiresIn"),
        ({"refreshToken": "x", "accessToken": ["a"]}, "accessToken"),
    ):
        response = api.put(credentials_path(connection, "v"), json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error_description"].startswith(field)
    assert (
        api.put(
            credentials_path(connection, "v"), content=b"[1", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )
    _ = authorize  # used by other modules
