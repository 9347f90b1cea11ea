"""The Authress SDKs, unchanged, reading a user's access token from the vault: Python's
`connections.get_connection_credentials` and node's `connections.getConnectionCredentials`
(tests/node), each authenticated by a service client's access key."""

from __future__ import annotations

import json
import subprocess

import pytest
from authress import AuthressClient
from authress.exceptions import ApiException

from tests.support.harness import Gateway
from tests.support.node import require_node, script
from tests.support.processes import clean_env
from tests.vault.conftest import Provider, add_connection, connect_user, credentials_path, service


def test_python_sdk_get_connection_credentials(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "sdk-user")
    expected = gw.admin(key).get(credentials_path(connection, "sdk-user")).json()["accessToken"]
    sdk = AuthressClient(authress_api_url=gw.admin_url, service_client_access_key=key)
    answer = sdk.connections.get_connection_credentials(connection, "sdk-user")
    assert answer.access_token == expected
    reader_of_nobody = gw.admin().new_client_with_key()[1]
    denied = AuthressClient(authress_api_url=gw.admin_url, service_client_access_key=reader_of_nobody)
    with pytest.raises(ApiException) as refused:
        denied.connections.get_connection_credentials(connection, "sdk-user")
    assert refused.value.status == 403


def test_node_sdk_get_connection_credentials(gw: Gateway, provider: Provider) -> None:
    node = require_node("@authress/sdk")
    connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "node-user", "bob")
    expected = gw.admin(key).get(credentials_path(connection, "node-user")).json()
    script_path = str(script("authress_connection_credentials.mjs"))

    def sdk(access_key: str, user: str) -> dict[str, object]:
        run = subprocess.run(
            [node, script_path, gw.admin_url, access_key, connection, user],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        assert run.returncode == 0, run.stderr
        answer: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
        return answer

    answer = sdk(key, "node-user")
    assert answer["accessToken"] == expected["accessToken"] and answer["tokenType"] == "Bearer", answer
    assert sdk(key, "nobody-stored").get("status") == 404
    assert sdk(gw.admin().new_client_with_key()[1], "node-user").get("status") == 403
