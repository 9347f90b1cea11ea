"""`/v1/identities` against the real gateway: create, read, list with pages, replace, delete,
audit, validation (the unique-claim rule above all), tenant rules and permissions."""

from __future__ import annotations

import time
from typing import Any

import pytest
from authress import AuthressClient

from tests.identities.helpers import grant, proxy, trust, unique, within
from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.issuer import Issuer

GITHUB = "https://token.actions.githubusercontent.com"


def test_lifecycle_with_github_preset(admin: Api) -> None:
    client = admin.create_client(unique("ci"))["clientId"]
    created = admin.post(
        "/v1/identities",
        json={
            "preset": "github-actions",
            "audience": "https://gateway.example",
            "conditions": {"sub": "repo:acme/deploy:ref:refs/heads/main"},
            "clientId": client,
            "createdTime": "1999-01-01T00:00:00Z",  # never taken from the body
        },
    )
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["issuer"] == GITHUB and entry["preset"] == "github-actions"
    assert entry["identityId"].startswith("tid_") and entry["source"] == "api"
    assert entry["createdTime"] != "1999-01-01T00:00:00Z"
    path = f"/v1/identities/{entry['identityId']}"
    assert admin.get(path).json() == entry

    replaced = admin.put(path, json={**entry, "conditions": {"sub": "repo:acme/deploy:environment:prod"}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["conditions"] == {"sub": "repo:acme/deploy:environment:prod"}
    assert replaced.json()["createdTime"] == entry["createdTime"]

    audit = admin.get("/v1/audit").json()
    actions = [(e["action"], e["target"]) for e in audit.get("records", audit.get("auditEntries", []))]
    assert ("identity.update", f"/gateway{path[3:]}") in actions or any(
        a == "identity.update" for a, _ in actions
    )

    assert admin.delete(path).status_code == 204
    assert admin.get(path).status_code == 404
    assert admin.delete(path).status_code == 404
    assert admin.put(path, json=entry).status_code == 404


def test_list_pages(admin: Api) -> None:
    client = admin.create_client(unique("ci"))["clientId"]
    prefix = unique("page")
    ids = [
        trust(
            admin,
            client,
            GITHUB,
            "aud",
            {"sub": f"repo:acme/r{i}:ref:refs/heads/main"},
            identityId=f"{prefix}-{i}",
        )["identityId"]
        for i in range(3)
    ]
    seen: list[str] = []
    cursor = f"{prefix}-"
    for _ in range(5):
        body = admin.get("/v1/identities", params={"limit": 2, "cursor": cursor}).json()
        seen += [e["identityId"] for e in body["identities"] if e["identityId"].startswith(prefix)]
        if (
            body["pagination"]["next"] is None
            or not seen
            or not body["identities"][-1]["identityId"].startswith(prefix)
        ):
            break
        cursor = body["pagination"]["next"]["cursor"]
    assert seen == ids
    assert (
        admin.post(
            "/v1/identities",
            json={
                "identityId": ids[0],
                "issuer": GITHUB,
                "audience": "a",
                "conditions": {"sub": "repo:x/y:ref:z"},
                "clientId": client,
            },
        ).status_code
        == 409
    )


BAD: list[tuple[dict[str, Any], str]] = [
    ({"conditions": {}}, "conditions"),
    ({"conditions": None}, "conditions"),
    ({"conditions": {"sub": "*"}}, "conditions"),
    ({"conditions": {"sub": "*:*:*"}}, "conditions"),
    ({"conditions": {"repository_owner": "acme"}}, "conditions"),  # names every repository of acme
    ({"conditions": {"sub": "repo:acme/**"}}, "conditions.sub"),
    ({"conditions": {"sub": 5}}, "conditions.sub"),
    ({"preset": "jenkins"}, "preset"),
    ({"audience": None}, "audience"),
    ({"clientId": "sc_unknown"}, "clientId"),
    ({"clientId": "sc_" + "A" * 22}, "clientId"),  # well-formed, no such client
    ({"issuer": "http://issuer.example"}, "issuer"),  # http only on loopback
    ({"issuer": "ftp://x"}, "issuer"),
    ({"jwksUri": "http://keys.example/jwks"}, "jwksUri"),
    ({"identityId": "no spaces"}, "identityId"),
]


@pytest.mark.parametrize(("change", "field"), BAD, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD)])
def test_validation(admin: Api, change: dict[str, Any], field: str) -> None:
    client = admin.create_client(unique("ci"))["clientId"]
    body = {
        "preset": "github-actions",
        "audience": "aud",
        "conditions": {"sub": "repo:acme/deploy:ref:refs/heads/main"},
        "clientId": client,
        **change,
    }
    body = {k: v for k, v in body.items() if v is not None or k == "conditions"}
    if change.get("conditions", 0) is None:
        del body["conditions"]
    response = admin.post("/v1/identities", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"].startswith(f"{field}:"), response.json()


def test_kubernetes_preset_needs_issuer_and_generic_needs_sub(admin: Api, issuer: Issuer) -> None:
    client = admin.create_client(unique("k8s"))["clientId"]
    no_issuer = admin.post(
        "/v1/identities",
        json={
            "preset": "kubernetes",
            "audience": "a",
            "clientId": client,
            "conditions": {"sub": "system:serviceaccount:ns:sa"},
        },
    )
    assert no_issuer.status_code == 400 and no_issuer.json()["error_description"].startswith("issuer:")
    generic = admin.post(
        "/v1/identities",
        json={
            "issuer": issuer.url,
            "audience": "a",
            "clientId": client,
            "conditions": {"repository": "acme/deploy"},
        },
    )
    assert generic.status_code == 400 and "sub" in generic.json()["error_description"]


def test_own_issuer_refused(admin: Api, gw: Gateway) -> None:
    client = admin.create_client(unique("own"))["clientId"]
    for issuer in (gw.public_url, f"{gw.admin_url}/v1/clients/{client}"):
        response = admin.post(
            "/v1/identities",
            json={"issuer": issuer, "audience": "a", "clientId": client, "conditions": {"sub": client}},
        )
        assert response.status_code == 400 and response.json()["error_description"].startswith("issuer:")


def test_permissions_and_tenants(gw: Gateway, admin: Api) -> None:
    # A client with no gateway: permission is refused; one with identities:read only reads.
    reader, reader_key = admin.new_client_with_key(name=unique("reader"))
    client = admin.create_client(unique("ci"))["clientId"]
    entry = trust(
        admin, client, GITHUB, "aud", {"sub": "repo:acme/x:ref:refs/heads/main"}, preset="github-actions"
    )
    as_reader = gw.admin(reader_key)
    assert as_reader.get("/v1/identities").status_code == 403
    grant(admin, reader, "gateway:identities:read", "/gateway/identities")
    within(
        1.5, lambda: as_reader.get(f"/v1/identities/{entry['identityId']}").status_code == 200, "the grant"
    )
    assert as_reader.delete(f"/v1/identities/{entry['identityId']}").status_code == 403

    # A tenant admin sees only its tenant's entries and names only its tenant's clients.
    tenant = unique("t").replace("-", "")
    boss, boss_key = admin.new_client_with_key(name=unique("boss"), tenant=tenant)
    grant(admin, boss, "gateway:identities:*", "/gateway/identities")
    within(1.5, lambda: gw.admin(boss_key).get("/v1/identities").status_code == 200, "the grant")
    mine = admin.create_client(unique("mine"), tenant=tenant)["clientId"]
    as_boss = gw.admin(boss_key)
    # Naming a client also takes gateway:clients:write on it, as creating its access key does.
    body = {"preset": "github-actions", "audience": "aud", "conditions": {"sub": "repo:acme/t:ref:refs/heads/main"}}
    assert as_boss.post("/v1/identities", json={**body, "clientId": mine}).status_code == 403
    grant(admin, boss, "gateway:clients:write", "/gateway/clients")
    # Every worker sees the grant within 1 s: until then a 403 (which creates nothing).
    own = within(1.5, lambda: (r := as_boss.post("/v1/identities", json={**body, "clientId": mine})).status_code == 201
                 and r, "the grant")
    foreign = as_boss.post(
        "/v1/identities",
        json={
            "preset": "github-actions",
            "audience": "aud",
            "clientId": client,
            "conditions": {"sub": "repo:acme/t:ref:refs/heads/main"},
        },
    )
    assert foreign.status_code == 400 and foreign.json()["error_description"].startswith("clientId:")
    listed = [
        e["identityId"] for e in as_boss.get("/v1/identities", params={"limit": 100}).json()["identities"]
    ]
    assert listed == [own.json()["identityId"]]
    assert as_boss.get(f"/v1/identities/{entry['identityId']}").status_code == 404
    assert as_boss.delete(f"/v1/identities/{entry['identityId']}").status_code == 404
    assert admin.get(f"/v1/identities/{entry['identityId']}").status_code == 200


def test_openapi_describes_identities(gw: Gateway) -> None:
    document = gw.admin(None).get("/openapi.json").json()
    assert set(document["paths"]["/v1/identities/{identityId}"]) == {"get", "put", "delete"}
    assert "gateway:identities:write" in document["paths"]["/v1/identities"]["post"]["description"]


def test_link_identity_shape(gw: Gateway, admin: Api, issuer: Issuer) -> None:
    """Authress's linkIdentity body, with a clientId: the token must verify now; the entry takes
    its issuer, the audience and a sub condition."""
    client = admin.create_client(unique("linked"))["clientId"]
    token = issuer.token({"sub": "linked-workload", "aud": ["first-aud", "second-aud"]})
    ambiguous = admin.post("/v1/identities", json={"jwt": token, "clientId": client})
    assert ambiguous.status_code == 400 and ambiguous.json()["error_description"].startswith("preferredAudience:")
    expired = issuer.token({"sub": "linked-workload", "aud": "first-aud"}, exp=int(time.time()) - 300)
    refused = admin.post("/v1/identities", json={"jwt": expired, "preferredAudience": "first-aud", "clientId": client})
    assert refused.status_code == 400 and refused.json()["error_description"] == "jwt: token expired"
    linked = admin.post(
        "/v1/identities",
        # An id that sorts first, so the SDK's first page below shows it.
        json={"jwt": token, "preferredAudience": "second-aud", "clientId": client, "identityId": unique("0link")},
    )
    assert linked.status_code == 201, linked.text
    entry = linked.json()
    assert (entry["issuer"], entry["audience"], entry["conditions"]) == (
        issuer.url, "second-aud", {"sub": "linked-workload"}
    )
    assert "jwt" not in entry and token not in linked.text
    within(1.5, lambda: proxy(gw, "/whoami", token).status_code == 200, "the linked identity")
    # Authress's Python SDK reads the list as its IdentityCollection.
    sdk = AuthressClient(authress_api_url=gw.admin_url, service_client_access_key=gw.admin_key)
    listed = sdk.accounts.get_account_identities()
    assert ("second-aud", issuer.url) in [(i.audience, i.issuer) for i in listed.identities]
