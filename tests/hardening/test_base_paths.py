"""Defect 4: a gateway whose public_url and admin.public_url carry a path.

The authorization check parsed the raw request path, which still carried the admin mount's
prefix, so every check answered 404; and RFC 8414 §3.1's path-inserted metadata URL
(`/.well-known/oauth-authorization-server/auth` for an issuer at `/auth`) was not served.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.hardening.conftest import running
from tests.support.harness import Gateway
from tests.support.processes import http_client


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    with running(tmp_path_factory.mktemp("paths"), policy_file, public_path="/auth", admin_path="/admin") as made:
        yield made


def test_the_authorization_check_works_under_the_admin_path(gw: Gateway) -> None:
    admin = gw.admin()
    client_id, _ = admin.new_client_with_key()
    admin.grant(client_id, ["documents:read"], ["/users/u1"])

    def check(resource: str) -> int:
        path = f"/v1/users/{client_id}/resources/{quote(resource, safe='')}/permissions/documents:read"
        return admin.get(path).status_code

    assert check("/users/u1/documents/1") == 200
    assert check("/users/u2/documents/1") == 404
    # The API lives under the path only: the same check at the root is no endpoint of ours.
    with http_client() as http:
        root = http.get(
            f"{gw.admin_url}/v1/users/{client_id}/resources/%2Fusers%2Fu1/permissions/documents:read"
        )
    assert root.status_code == 404


def test_rfc8414_path_inserted_metadata_is_served(gw: Gateway) -> None:
    origin = f"http://127.0.0.1:{gw.port}"
    with http_client() as http:
        inserted = http.get(f"{origin}/.well-known/oauth-authorization-server/auth")
        appended = http.get(f"{gw.public_url}/.well-known/oauth-authorization-server")
        oidc = http.get(f"{gw.public_url}/.well-known/openid-configuration")
    for response in (inserted, appended, oidc):
        assert response.status_code == 200, response.text
    assert inserted.json() == appended.json()
    assert inserted.json()["issuer"] == gw.public_url
    assert inserted.json()["token_endpoint"] == f"{gw.public_url}/oauth/token"
