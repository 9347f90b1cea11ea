"""Defect 13: resource URIs follow the proxy's canonical-path rules; an ambiguous one is a 400,
never a match.

With a grant on `/users/u1` only, the authorization check once answered 200 for
`/users/u1/../u2/documents/1` and friends: a service that asks with a path it later normalises
would grant another user's data. The same rules hold for records' resource URIs and user ids,
and for the resource templates of policy files.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from tests.support.admin import record_body
from tests.support.checks import error_body
from tests.support.harness import Gateway

AMBIGUOUS = [
    "/users/u1/../u2/documents/1",
    "/users/u1/%2e%2e/u2",
    "/users/u1/%2E%2E/u2",
    "/users/u1//x",
    "/users/u1/./x",
    "users/u1/x",
    "/users/u1/x/",
    "/users/u1\\..\\u2",
    "/users/u1;v=1/x",
    "/users/u1/\x00",
]


def _encoded(value: str) -> str:
    # Dots encoded too: an HTTP client would otherwise resolve a `..` segment before sending.
    return quote(value, safe="").replace(".", "%2E")


def _check_path(user: str, resource: str) -> str:
    return f"/v1/users/{_encoded(user)}/resources/{_encoded(resource)}/permissions/documents:read"


def test_the_check_answers_400_for_every_ambiguous_resource(gateway: Gateway) -> None:
    admin = gateway.admin()
    client_id, _ = admin.new_client_with_key()
    admin.grant(client_id, ["documents:read"], ["/users/u1"])
    assert admin.get(_check_path(client_id, "/users/u1/documents/1")).status_code == 200
    for resource in AMBIGUOUS:
        response = admin.get(_check_path(client_id, resource))
        assert response.status_code == 400, (resource, response.status_code, response.text)
        assert response.json()["error"] == "invalid_request"
        assert "resourceUri" in response.json()["error_description"]


@pytest.mark.parametrize("user", ["..", ".", "a/../b", "a;b", "a%2Fb"])
def test_an_ambiguous_user_id_is_a_400(gateway: Gateway, user: str) -> None:
    admin = gateway.admin()
    response = admin.get(_check_path(user, "/users/u1"))
    assert response.status_code == 400, (user, response.text)
    assert "userId" in response.json()["error_description"]
    role = admin.create_role(["documents:read"])
    response = admin.post(
        "/v1/records", json=record_body([user], [role], ["/users/u1"], f"rec-u-{len(user)}")
    )
    assert response.status_code == 400, (user, response.text)
    assert "users[0].userId" in response.json()["error_description"]


def test_records_refuse_ambiguous_resource_uris(gateway: Gateway) -> None:
    admin = gateway.admin()
    role = admin.create_role(["documents:read"])
    client_id, _ = admin.new_client_with_key()
    for i, resource in enumerate(AMBIGUOUS):
        response = admin.post(
            "/v1/records", json=record_body([client_id], [role], [resource], f"rec-amb-{i}")
        )
        assert response.status_code == 400, (resource, response.text)
        assert "statements[0].resources[0].resourceUri" in response.json()["error_description"], response.text
    assert admin.get("/v1/records/rec-amb-0").status_code == 404  # nothing stored


@pytest.mark.parametrize(
    "resource", ["/users/{userId}/../admin", "/users//{userId}", "/users/{userId}/./x", "/users/{userId}/"]
)
def test_policy_check_refuses_an_ambiguous_resource_template(
    gateway: Gateway, tmp_path: Path, resource: str
) -> None:
    policy = tmp_path / "routes.yaml"
    policy.write_text(
        "upstreams:\n  u:\n    url: http://127.0.0.1:9\nroutes:\n"
        "  - id: r\n    match: GET /v1/users/{userId}\n    upstream: u\n"
        f"    permission: documents:read\n    resource: {resource}\n"
    )
    result = gateway.run("policy", "check", str(policy))
    assert result.returncode != 0
    assert "resource" in result.stderr and "r" in result.stderr, result.stderr


def test_error_shape(gateway: Gateway) -> None:
    admin = gateway.admin()
    client_id, _ = admin.new_client_with_key()
    error_body(admin.get(_check_path(client_id, "/users/u1/../u2")), 400, "invalid_request")
