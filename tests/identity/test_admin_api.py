"""Admin API input handling (contract §7): validation errors name the field, empty JSON bodies
are {}, unknown ids are 404, callers need a credential (401) and grants (403), limits are
checked, and pagination walks every page. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from tests.support.admin import Api
from tests.support.harness import Gateway

FIELD_ERROR = re.compile(r"^(?P<field>[A-Za-z][A-Za-z0-9_.\[\]]*): \S.*")
JSON = {"Content-Type": "application/json"}


def _invalid(response: Any, field: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text)
    body = response.json()
    assert body["error"] == "invalid_request", body
    match = FIELD_ERROR.match(body["error_description"])
    assert match, body["error_description"]
    assert match["field"] == field, body["error_description"]


@pytest.fixture(scope="module")
def target(gw: Gateway) -> str:
    """A client the validation tests may try to change."""
    api = gw.admin()
    try:
        return str(api.create_client(name="validation-target")["clientId"])
    finally:
        api.close()


@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "body"),
        (b'{"name": "x",}', "body"),
        (b"\xff\xfe{}", "body"),
        (b"[]", "body"),
        (b'[{"name": "x"}]', "body"),
        (b'"just a string"', "body"),
        (b"42", "body"),
        (b"null", "body"),
        (b"{}", "name"),
        (b'{"description": "no name"}', "name"),
        (b'{"name": 5}', "name"),
        (b'{"name": ["x"]}', "name"),
        (b'{"name": ""}', "name"),
        (b'{"name": "ok", "description": 7}', "description"),
        (b'{"name": "ok", "scopes": "a b"}', "scopes"),
        (b'{"name": "ok", "scopes": [1]}', "scopes"),
        (b'{"name": "ok", "audiences": {"a": 1}}', "audiences"),
        (b'{"name": "ok", "tokenLifetime": "3600"}', "tokenLifetime"),
        (b'{"name": "ok", "tokenLifetime": 1}', "tokenLifetime"),
        (b'{"name": "ok", "tokenLifetime": true}', "tokenLifetime"),
        (b'{"name": "ok", "disabled": "yes"}', "disabled"),
        (b'{"name": "ok", "tenant": 3}', "tenant"),
    ],
)
def test_client_validation(gw: Gateway, admin_of: Any, body: bytes, field: str) -> None:
    admin = admin_of(gw)
    _invalid(admin.post("/v1/clients", content=body, headers=JSON), field)


@pytest.mark.parametrize(
    "body, field",
    [
        (b'{"name": 5}', "name"),
        (b'{"scopes": "x"}', "scopes"),
        (b'{"disabled": 1}', "disabled"),
        (b"[1]", "body"),
    ],
)
def test_client_update_validation(gw: Gateway, admin_of: Any, target: str, body: bytes, field: str) -> None:
    admin = admin_of(gw)
    _invalid(admin.patch(f"/v1/clients/{target}", content=body, headers=JSON), field)
    assert admin.get(f"/v1/clients/{target}").json()["name"] == "validation-target"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "r"}, "roleId"),
        ({"roleId": "has space", "permissions": []}, "roleId"),
        ({"roleId": "r-{u}"}, "permissions"),
        ({"roleId": "r-{u}", "permissions": "documents:read"}, "permissions"),
        ({"roleId": "r-{u}", "permissions": [{"allow": True}]}, "permissions[0].action"),
        ({"roleId": "r-{u}", "permissions": [{"action": "a:b", "allow": "yes"}]}, "permissions[0].allow"),
        (
            {"roleId": "r-{u}", "permissions": [{"action": "a:b"}, {"action": "c", "grant": 1}]},
            "permissions[1].grant",
        ),
    ],
)
def test_role_validation(gw: Gateway, admin_of: Any, body: dict[str, Any], field: str) -> None:
    admin = admin_of(gw)
    if isinstance(body.get("roleId"), str):
        body = dict(body, roleId=body["roleId"].replace("{u}", uuid.uuid4().hex[:8]))
    _invalid(admin.post("/v1/roles", json=body), field)
    if "roleId" in body and " " not in body["roleId"]:
        assert admin.get(f"/v1/roles/{body['roleId']}").status_code == 404


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "users": [{"userId": "sc_x"}]}, "statements"),
        ({"statements": "x"}, "statements"),
        ({"statements": [{"roles": "reader", "resources": [{"resourceUri": "/a"}]}]}, "statements[0].roles"),
        ({"statements": [{"roles": ["reader"], "resources": ["/a"]}]}, "statements[0].resources"),
        (
            {"statements": [{"roles": ["no-such-role-xyz"], "resources": [{"resourceUri": "/a"}]}]},
            "statements[0].roles",
        ),
        ({"users": "sc_x", "statements": []}, "users"),
        ({"users": [{"id": "sc_x"}], "statements": []}, "users[0].userId"),
        ({"recordId": "bad id!", "statements": []}, "recordId"),
    ],
)
def test_record_validation(gw: Gateway, admin_of: Any, body: dict[str, Any], field: str) -> None:
    admin = admin_of(gw)
    _invalid(admin.post("/v1/records", json=body), field)


def test_empty_json_body_means_an_empty_object(gw: Gateway, admin_of: Any, target: str) -> None:
    admin = admin_of(gw)
    # {} lacks the name: the complaint is about the name, not about the body.
    _invalid(admin.post("/v1/clients", content=b"", headers=JSON), "name")
    # A bodyless POST with Content-Type: application/json (what Node's SDK sends) creates a key.
    response = admin.post(f"/v1/clients/{target}/access-keys", content=b"", headers=JSON)
    assert response.status_code == 201, response.text
    assert (
        admin.delete(f"/v1/clients/{target}/access-keys/{response.json()['keyId']}", headers=JSON).status_code
        == 204
    )
    # PATCH {} changes nothing; GET and DELETE with the header and no body work.
    before = admin.get(f"/v1/clients/{target}", headers=JSON).json()
    patched = admin.patch(f"/v1/clients/{target}", content=b"", headers=JSON)
    assert patched.status_code == 200, patched.text
    assert {k: patched.json()[k] for k in ("name", "scopes", "disabled")} == {
        k: before[k] for k in ("name", "scopes", "disabled")
    }
    # Unknown fields are ignored; fields a caller may not set are never taken from the body.
    response = admin.post(
        "/v1/clients",
        json={"name": "ids-ignored", "clientId": "sc_" + "A" * 22, "createdTime": "1999", "color": "blue"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["clientId"] != "sc_" + "A" * 22 and response.json()["createdTime"] != "1999"


def test_unknown_ids_are_404(gw: Gateway, admin_of: Any, target: str) -> None:
    admin = admin_of(gw)
    ghost = "sc_" + "Z" * 22
    for method, path in (
        ("GET", f"/v1/clients/{ghost}"),
        ("PUT", f"/v1/clients/{ghost}"),
        ("PATCH", f"/v1/clients/{ghost}"),
        ("DELETE", f"/v1/clients/{ghost}"),
        ("GET", f"/v1/clients/{ghost}/access-keys"),
        ("POST", f"/v1/clients/{ghost}/access-keys"),
        ("DELETE", f"/v1/clients/{ghost}/access-keys/acc_{'Z' * 22}"),
        ("DELETE", f"/v1/clients/{target}/access-keys/acc_{'Z' * 22}"),
        ("GET", "/v1/roles/no-such-role-xyz"),
        ("DELETE", "/v1/roles/no-such-role-xyz"),
        ("GET", "/v1/records/no-such-record-xyz"),
        ("DELETE", "/v1/records/no-such-record-xyz"),
    ):
        kwargs = {"json": {"name": "x"}} if method in ("PUT", "PATCH") else {}
        response = admin.request(method, path, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"


ENDPOINTS = [
    ("GET", "/v1/clients"),
    ("POST", "/v1/clients"),
    ("GET", "/v1/roles"),
    ("POST", "/v1/roles"),
    ("GET", "/v1/records"),
    ("POST", "/v1/records"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/roles/gateway-admin"),
    ("GET", "/v1/records/gateway-admin"),
    ("DELETE", "/v1/records/gateway-admin"),
]


def test_no_credential_is_401_and_no_grant_is_403(gw: Gateway, admin_of: Any) -> None:
    anonymous: Api = admin_of(gw, None)
    admin = admin_of(gw)
    _, key = admin.new_client_with_key()
    nobody: Api = admin_of(gw, key)
    for method, path in ENDPOINTS:
        body = (
            {"json": {"name": "x", "roleId": "x", "permissions": [], "statements": []}}
            if method == "POST"
            else {}
        )
        response = anonymous.request(method, path, **body)
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].lower().startswith("bearer")
        response = nobody.request(method, path, **body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"] == "access_denied"
    # Another client's clients, keys and permissions are out of reach too.
    admin_id = gw.admin_id
    assert nobody.get(f"/v1/clients/{admin_id}").status_code == 403
    assert nobody.post(f"/v1/clients/{admin_id}/access-keys").status_code == 403
    check = f"/v1/users/{admin_id}/resources/%2Fgateway/permissions/gateway%3Aclients%3Aread"
    assert nobody.get(check).status_code == 403
    assert admin.get(check).status_code == 200
    assert admin.get("/v1/records/gateway-admin").status_code == 200


@pytest.mark.parametrize("path", ["/v1/clients", "/v1/roles", "/v1/records", "/v1/audit"])
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1.5", "100000"])
def test_limit_out_of_range_is_400(gw: Gateway, admin_of: Any, path: str, limit: str) -> None:
    admin = admin_of(gw)
    _invalid(admin.get(path, params={"limit": limit}), "limit")


def test_pagination_walks_every_client(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    made = {admin.create_client(name=f"page-{i}")["clientId"] for i in range(5)}
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    for _ in range(1000):
        response = admin.get("/v1/clients", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"clients", "pagination"}
        assert len(body["clients"]) <= 2
        seen += [c["clientId"] for c in body["clients"]]
        pages += 1
        nxt = body["pagination"]["next"]
        if nxt is None:
            break
        assert len(body["clients"]) == 2
        cursor = nxt["cursor"]
        assert isinstance(cursor, str) and cursor
    else:
        pytest.fail("pagination did not end")
    assert len(seen) == len(set(seen)), "a client showed on two pages"
    assert made <= set(seen)
    assert pages >= 3
    # The same set as one big page (when it fits in one).
    everything = admin.get("/v1/clients", params={"limit": 100}).json()
    if everything["pagination"]["next"] is None:
        assert set(seen) == {c["clientId"] for c in everything["clients"]}


def test_openapi_describes_the_admin_api(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw, None)
    response = admin.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/v1/clients",
        "/v1/clients/{clientId}/access-keys",
        "/v1/roles",
        "/v1/records",
        "/v1/audit",
    ):
        assert path in paths
