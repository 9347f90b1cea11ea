"""Who may administer what (contract §7): tenant admins see and change only their tenant's
clients (404 for the rest) and write no roles or records; a role or record confers only what its
writer holds with `grant: true`. On SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.support.admin import Api, record_body
from tests.support.harness import Gateway


def _settled(api: Api, path: str, status: int = 200, timeout: float = 1.5) -> None:
    """Wait (bounded) until a grant written a moment ago shows on the admin API."""
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(path)
        if response.status_code == status:
            return
        assert time.monotonic() < deadline, f"{path}: {response.status_code} {response.text}"
        time.sleep(0.05)


def _tenant_admin(admin: Api, tenant: str, actions: list[str], resources: list[str]) -> tuple[str, str]:
    client_id, access_key = admin.new_client_with_key(tenant=tenant)
    role_id = admin.create_role(actions)
    admin.create_record([client_id], [role_id], resources)
    return client_id, access_key


def test_tenant_admin_manages_only_its_tenant(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    t1, t2 = f"t1{uuid.uuid4().hex[:6]}", f"t2{uuid.uuid4().hex[:6]}"
    me, my_key = _tenant_admin(admin, t1, ["gateway:clients:*"], ["/gateway/clients"])
    other = admin.create_client(tenant=t2)["clientId"]
    other_key = admin.create_key(other)["keyId"]
    untenanted = admin.create_client()["clientId"]
    tenant = admin_of(gw, my_key)
    _settled(tenant, "/v1/clients")

    # Creating: the client lands in the caller's tenant, whatever the body says.
    for body in ({"name": "a", "tenant": t2}, {"name": "b"}, {"name": "c", "tenant": None}):
        response = tenant.post("/v1/clients", json=body)
        assert response.status_code == 201, response.text
        assert response.json()["tenant"] == t1
    made = response.json()["clientId"]
    assert admin.get(f"/v1/clients/{made}").json()["tenant"] == t1

    # Listing: only t1, across every page.
    listed: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100):
        page = tenant.get("/v1/clients", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        listed += page.json()["clients"]
        nxt = page.json()["pagination"]["next"]
        if not nxt:
            break
        cursor = nxt["cursor"]
    ids = {c["clientId"] for c in listed}
    assert {c["tenant"] for c in listed} == {t1}
    assert me in ids and made in ids
    assert other not in ids and untenanted not in ids

    # Its own tenant's clients it manages fully.
    assert tenant.get(f"/v1/clients/{made}").status_code == 200
    key = tenant.post(f"/v1/clients/{made}/access-keys")
    assert key.status_code == 201, key.text
    assert tenant.put(f"/v1/clients/{made}", json={"name": "renamed", "tenant": t2}).json()["tenant"] == t1

    # Another tenant's client (and a client without a tenant) does not exist for it.
    for victim, victim_key in ((other, other_key), (untenanted, "acc_" + "x" * 22)):
        assert tenant.get(f"/v1/clients/{victim}").status_code == 404
        assert tenant.put(f"/v1/clients/{victim}", json={"name": "mine now"}).status_code == 404
        assert tenant.patch(f"/v1/clients/{victim}", json={"disabled": True}).status_code == 404
        assert tenant.get(f"/v1/clients/{victim}/access-keys").status_code == 404
        assert tenant.post(f"/v1/clients/{victim}/access-keys").status_code == 404
        assert tenant.delete(f"/v1/clients/{victim}/access-keys/{victim_key}").status_code == 404
        assert tenant.delete(f"/v1/clients/{victim}").status_code == 404
    # ... and nothing happened to them.
    shown = admin.get(f"/v1/clients/{other}").json()
    assert shown["name"] != "mine now" and shown["disabled"] is False
    assert [k["keyId"] for k in shown["verificationKeys"]] == [other_key]
    assert admin.get(f"/v1/clients/{untenanted}").status_code == 200

    # Roles and records: 403.
    role = {"roleId": f"r-{uuid.uuid4().hex[:8]}", "name": "r", "permissions": [{"action": "x:read"}]}
    assert tenant.post("/v1/roles", json=role).status_code == 403
    assert tenant.put(f"/v1/roles/{role['roleId']}", json=role).status_code == 403
    rec = record_body([me], ["gateway-admin"], ["/gateway"], f"rec-{uuid.uuid4().hex[:8]}")
    assert tenant.post("/v1/records", json=rec).status_code == 403
    assert tenant.put(f"/v1/records/{rec['recordId']}", json=rec).status_code == 403
    assert tenant.delete("/v1/records/gateway-admin").status_code == 403
    assert admin.get("/v1/records/gateway-admin").status_code == 200


def test_tenant_admin_with_every_gateway_permission_still_writes_no_roles_or_records(
    gw: Gateway, admin_of: Any
) -> None:
    admin = admin_of(gw)
    tenant_name = f"t{uuid.uuid4().hex[:8]}"
    me, key = _tenant_admin(admin, tenant_name, ["gateway:*"], ["/gateway"])
    tenant = admin_of(gw, key)
    _settled(tenant, "/v1/roles")
    role_id = f"r-{uuid.uuid4().hex[:8]}"
    response = tenant.post(
        "/v1/roles", json={"roleId": role_id, "name": "r", "permissions": [{"action": "documents:read"}]}
    )
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "access_denied"
    existing = admin.create_role(["documents:read"])
    assert tenant.delete(f"/v1/roles/{existing}").status_code == 403
    rec = record_body([me], [existing], ["/documents"], f"rec-{uuid.uuid4().hex[:8]}")
    assert tenant.post("/v1/records", json=rec).status_code == 403
    assert admin.get(f"/v1/roles/{role_id}").status_code == 404
    assert admin.get(f"/v1/records/{rec['recordId']}").status_code == 404
    assert admin.get(f"/v1/roles/{existing}").status_code == 200
    # The audit log is not the tenant's to read either.
    assert tenant.get("/v1/audit").status_code == 403


def test_confer_only_what_you_hold(gw: Gateway, admin_of: Any) -> None:
    admin = admin_of(gw)
    suffix = uuid.uuid4().hex[:8]
    writer, key = admin.new_client_with_key()
    # It may write roles and records, reads documents (without grant) and may hand out
    # reports:read (with grant) on /reports.
    admin.grant(
        writer,
        ["gateway:roles:write", "gateway:roles:read", "gateway:records:write", "gateway:records:read"],
        ["/gateway"],
    )
    admin.grant(writer, ["documents:read"], ["/"], grant=False)
    admin.grant(writer, ["reports:read"], ["/reports"], grant=True)
    api = admin_of(gw, key)
    _settled(api, "/v1/roles")

    docs_role = {
        "roleId": f"docs-{suffix}",
        "name": "docs",
        "permissions": [{"action": "documents:read", "allow": True, "grant": False, "delegate": False}],
    }
    response = api.post("/v1/roles", json=docs_role)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "access_denied"
    assert "documents:read" in response.json()["error_description"]
    assert api.put(f"/v1/roles/{docs_role['roleId']}", json=docs_role).status_code == 403
    # Wildcards are no way around it.
    wild = dict(docs_role, roleId=f"wild-{suffix}", permissions=[{"action": "documents:*"}])
    assert api.post("/v1/roles", json=wild).status_code == 403
    star = dict(docs_role, roleId=f"star-{suffix}", permissions=[{"action": "*"}])
    assert api.post("/v1/roles", json=star).status_code == 403
    assert admin.get(f"/v1/roles/{docs_role['roleId']}").status_code == 404

    # A record that gives an existing documents:read role: refused for it too.
    admin_docs = admin.create_role(["documents:read"])
    target = admin.create_client()["clientId"]
    record = record_body([target], [admin_docs], ["/users/1"], f"rec-docs-{suffix}")
    response = api.post("/v1/records", json=record)
    assert response.status_code == 403, response.text
    assert admin.get(f"/v1/records/{record['recordId']}").status_code == 404

    # What it holds with grant it may confer, where it holds it.
    reports = api.post(
        "/v1/roles",
        json={"roleId": f"reports-{suffix}", "name": "reports", "permissions": [{"action": "reports:read"}]},
    )
    assert reports.status_code == 201, reports.text
    inside = record_body([target], [f"reports-{suffix}"], ["/reports/2024"], f"rec-rep-{suffix}")
    assert api.post("/v1/records", json=inside).status_code == 201
    outside = record_body([target], [f"reports-{suffix}"], ["/"], f"rec-rep2-{suffix}")
    assert api.post("/v1/records", json=outside).status_code == 403
    # Nor may it hand out its own gateway: permissions (it holds them without grant).
    admin_role = record_body([target], ["gateway-admin"], ["/gateway"], f"rec-adm-{suffix}")
    assert api.post("/v1/records", json=admin_role).status_code == 403

    # The first admin holds everything with grant: the same writes succeed.
    assert admin.post("/v1/roles", json=docs_role).status_code == 201
    assert admin.post("/v1/records", json=record).status_code == 201


def test_owner_grant_on_root_never_confers_gateway_permissions(gw: Gateway, admin_of: Any) -> None:
    """`*` on `/` (what the first admin's owner role is) makes nobody a gateway administrator."""
    admin = admin_of(gw)
    client_id, key = admin.new_client_with_key()
    star = admin.create_role(["*"], grant=True)
    admin.create_record([client_id], ["owner", star], ["/"])  # `owner`: what `gateway init` made
    api = admin_of(gw, key)
    # The grant is in force (its own permission check passes) ...
    _settled(api, f"/v1/users/{client_id}/resources/%2Fdocuments%2F1/permissions/documents%3Aread")
    # ... yet it opens none of the gateway's own resources.
    gateway_check = (
        f"/v1/users/{client_id}/resources/%2Fgateway%2Fclients/permissions/gateway%3Aclients%3Aread"
    )
    assert api.get(gateway_check).status_code == 404
    for path in ("/v1/clients", "/v1/roles", "/v1/records", "/v1/audit"):
        response = api.get(path)
        assert response.status_code == 403, (path, response.text)
