"""Connections over the admin API, the config file and the CLI; and the secrets the vault holds
(client secrets, refresh tokens) appearing in no response, log line, metric or audit entry."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest

from tests.support.harness import Gateway
from tests.support.processes import http_client
from tests.vault.conftest import (
    CLIENT_SECRET,
    Launch,
    Provider,
    add_connection,
    authorize,
    connect_user,
    credentials_path,
    service,
)


def test_create_get_list_put_delete(gw: Gateway, provider: Provider) -> None:
    api = gw.admin()
    body = provider.connection("cal-crud")
    created = api.post("/v1/connections", json=body)
    assert created.status_code == 201, created.text
    data = created.json()
    assert data["connectionId"] == "cal-crud" and data["hasClientSecret"] is True
    assert data["authenticationUrl"] == body["authorizationUrl"]  # Authress's name for it
    assert "clientSecret" not in data and CLIENT_SECRET not in created.text
    assert api.post("/v1/connections", json=body).status_code == 409
    got = api.get("/v1/connections/cal-crud")
    assert got.status_code == 200 and CLIENT_SECRET not in got.text
    listed = api.get("/v1/connections", params={"limit": 100}).json()
    assert "cal-crud" in [c["connectionId"] for c in listed["connections"]]
    # A PUT without the secret keeps it, unless it moves the token URL (the stored secret would
    # otherwise go wherever the writer points it).
    kept = api.put("/v1/connections/cal-crud", json={**body, "clientSecret": None, "name": "renamed"})
    assert kept.status_code == 200 and kept.json()["name"] == "renamed" and kept.json()["hasClientSecret"]
    moved = api.put(
        "/v1/connections/cal-crud",
        json={**body, "clientSecret": None, "tokenUrl": "https://elsewhere.example.com/token"},
    )
    assert moved.status_code == 400 and moved.json()["error_description"].startswith("clientSecret")
    assert api.delete("/v1/connections/cal-crud").status_code == 204
    assert api.get("/v1/connections/cal-crud").status_code == 404
    assert api.delete("/v1/connections/cal-crud").status_code == 404
    actions = [e["action"] for e in api.get("/v1/audit", params={"limit": 50}).json()["auditEntries"]]
    assert {"connection.create", "connection.update", "connection.delete"} <= set(actions)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"connectionId": "has space"}, "connectionId"),
        ({"tokenUrl": "ftp://x"}, "tokenUrl"),
        ({"tokenUrl": "http://provider.example.com/token"}, "tokenUrl"),  # plain http off loopback
        ({"authorizationUrl": None}, "authorizationUrl"),
        ({"clientId": ""}, "clientId"),
        ({"clientSecret": None}, "clientSecret"),
        ({"clientSecretEnv": "GATEWAY_MASTER_KEY", "clientSecret": None}, "clientSecretEnv"),
        ({"clientSecretEnv": "HOME", "clientSecret": None}, "clientSecretEnv"),
        ({"resourceTemplate": "/users/all"}, "resourceTemplate"),
        ({"allowedRedirects": ["not a url"]}, "allowedRedirects[0]"),
        ({"tokenEndpointAuthMethod": "private_key_jwt"}, "tokenEndpointAuthMethod"),
        ({"authorizationParams": {"state": "x"}}, "authorizationParams.state"),
    ],
)
def test_validation(gw: Gateway, provider: Provider, change: dict[str, object], field: str) -> None:
    response = gw.admin().post("/v1/connections", json={**provider.connection(), **change})
    assert response.status_code == 400, response.text
    assert response.json()["error_description"].startswith(field + ":")


def test_permissions(gw: Gateway, provider: Provider) -> None:
    _, key = gw.admin().new_client_with_key()
    assert gw.admin(key).get("/v1/connections").status_code == 403
    assert gw.admin(key).post("/v1/connections", json=provider.connection()).status_code == 403
    assert gw.admin(None).get("/v1/connections").status_code == 401


def test_openapi_describes_the_vault(gw: Gateway) -> None:
    with http_client() as client:
        doc = client.get(f"{gw.admin_url}/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/v1/connections/{connectionId}/users/{userId}/credentials"]) == {"get", "put", "delete"}
    assert "post" in paths["/v1/connections/{connectionId}/users/{userId}/authorize"]
    assert (
        "credentials:read"
        in paths["/v1/connections/{connectionId}/users/{userId}/credentials"]["get"]["description"]
    )


def test_config_connections_with_the_secret_from_the_environment(launch: Launch, provider: Provider) -> None:
    connection = {
        "connection_id": "from-config",
        "authorization_url": f"{provider.url}/authorize",
        "token_url": f"{provider.url}/token",
        "revocation_url": f"{provider.url}/revoke",
        "client_id": "gateway-vault-test",
        "client_secret_env": "CALENDAR_CLIENT_SECRET",
        "scopes": ["calendar.read"],
    }
    gw = launch("config", init=True, start=False, vault={"connections": [connection]})
    gw.env["CALENDAR_CLIENT_SECRET"] = CLIENT_SECRET
    gw.start()
    api = gw.admin()
    got = api.get("/v1/connections/from-config").json()
    assert got["source"] == "config" and got["clientSecretEnv"] == "CALENDAR_CLIENT_SECRET"
    assert api.put("/v1/connections/from-config", json={"clientId": "x"}).status_code == 409
    assert api.delete("/v1/connections/from-config").status_code == 409
    key = service(gw)
    connect_user(gw, provider, key, "from-config", "u1")
    assert gw.admin(key).get(credentials_path("from-config", "u1")).status_code == 200


def test_config_errors_name_the_field(launch: Launch, provider: Provider) -> None:
    gw = launch(
        "badconfig",
        init=False,
        start=False,
        vault={"connections": [{"connection_id": "x", "token_url": "ftp://x"}]},
    )
    result = gw.run("connections", "list")
    assert result.returncode == 2
    assert "vault.connections[0]" in result.stderr and "token_url" in result.stderr


def test_cli_create_list_delete(gw: Gateway, provider: Provider) -> None:
    created = gw.run(
        "connections",
        "create",
        "cli-made",
        "--authorization-url",
        f"{provider.url}/authorize",
        "--token-url",
        f"{provider.url}/token",
        "--client-id",
        "gateway-vault-test",
        "--client-secret-stdin",
        "--scope",
        "calendar.read",
        "--json",
        input_text=CLIENT_SECRET + "\n",
    )
    assert created.returncode == 0, created.stderr
    assert CLIENT_SECRET not in created.stdout and json.loads(created.stdout)["hasClientSecret"]
    listed = gw.run_json("connections", "list")
    assert "cli-made" in [c["connectionId"] for c in listed["connections"]]
    # Made by the CLI, used by the server: the sealed secret opens there.
    key = service(gw)
    connect_user(gw, provider, key, "cli-made", "u1")
    assert gw.run_json("connections", "delete", "cli-made")["credentials"] == 1


def test_no_secret_in_responses_logs_metrics_audit_or_store(gw: Gateway, provider: Provider) -> None:
    """The provider's client secret and every refresh token it issued for our users: nowhere but
    sealed in the store."""
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=62)
    answers: list[httpx.Response] = []
    connect_user(gw, provider, key, connection, "leak-1")
    connect_user(gw, provider, key, connection, "leak-2", "bob")
    for _ in range(2):
        answers.append(gw.admin(key).get(credentials_path(connection, "leak-1")))
        time.sleep(2.1)  # the next read refreshes (and rotates)
    provider.revoke_user("alice")
    answers.append(gw.admin(key).get(credentials_path(connection, "leak-1")))  # invalid_grant → 409
    provider.set(fail=1)
    answers.append(gw.admin(key).get(credentials_path(connection, "leak-2")))  # 502
    answers.append(gw.admin(key).post(f"/v1/connections/{connection}/users/leak-2/authorize", json={}))
    answers.append(gw.admin().get(f"/v1/connections/{connection}"))
    provider.set(fail=0)
    assert [a.status_code for a in answers] == [200, 200, 409, 502, 200, 200]
    secrets = [CLIENT_SECRET, *provider.state()["all_refresh_tokens"]]
    assert len(secrets) > 4
    time.sleep(1.0)  # the batched audit entries are written
    audit = gw.admin().get("/v1/audit", params={"limit": 500}).text
    assert "credentials.refresh" in audit and "credentials.read" in audit
    with http_client() as client:
        metrics = client.get(f"{gw.admin_url}/metrics").text
    log = gw.log()
    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    for secret in secrets:
        for where, text in (
            ("audit", audit),
            ("metrics", metrics),
            ("log", log),
            ("store", dump),
            *((f"response {a.status_code}", a.text + str(a.headers)) for a in answers),
        ):
            assert secret not in text, f"a secret is in the {where}"
    _ = authorize
