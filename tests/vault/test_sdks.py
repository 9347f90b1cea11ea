"""The Authress SDKs, unchanged, reading a user's access token from the vault: Python's
`connections.get_connection_credentials` and node's `connections.getConnectionCredentials`
(tests/node), each authenticated by a service client's access key."""

from __future__ import annotations

import pytest
from authress import AuthressClient
from authress.exceptions import ApiException

from tests.support.harness import Gateway
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
