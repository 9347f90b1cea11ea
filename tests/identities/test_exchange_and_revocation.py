"""Token exchange (RFC 8693) and external jwt-bearer assertions (RFC 7523) at /oauth/token; the
admin API with an external token (the Authress SDK's token-provider form); and an entry deleted or
changed: refused within 1 s on every worker, the gateway tokens exchanged under it too."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from authress import AuthressClient
from authress.models import Client

from tests.identities.helpers import ACCESS_TOKEN_TYPE, exchange, grant, proxy, trust, unique, within
from tests.identity.proxying import after_deadline_every_request, assert_invalid_token, warm_every_worker
from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.issuer import Issuer
from tests.support.processes import Upstream, http_client, new_mark


@pytest.fixture
def entry(admin: Api, issuer: Issuer) -> dict[str, Any]:
    """A fresh client (scopes deploy and read, audience https://api.example) trusted for its own
    repository's main branch."""
    client = admin.create_client(unique("x"), scopes=["deploy", "read"], audiences=["https://api.example"])["clientId"]
    repository = f"acme/{unique('repo')}"
    made = trust(admin, client, issuer.url, "https://gw.example", {"sub": f"repo:{repository}:ref:refs/heads/main"},
                 preset="github-actions")
    return {**made, "repository": repository, "token": issuer.github("https://gw.example", repository=repository)}


def test_exchange_issues_a_token_of_the_mapped_client(gw: Gateway, entry: dict[str, Any]) -> None:
    response = within(1.5, lambda: (r := exchange(gw, entry["token"])).status_code == 200 and r, "trust")
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert body["token_type"] == "Bearer" and body["issued_token_type"] == ACCESS_TOKEN_TYPE
    assert body["scope"] == "deploy read" and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == entry["clientId"]
    assert claims["cid"] == f"identity:{entry['identityId']}@1" and claims["aud"] == gw.public_url
    # The exchange answered on one worker; the other may see the new entry a feed poll later.
    whoami = within(1.5, lambda: (r := proxy(gw, "/whoami", body["access_token"])).status_code == 200 and r, "trust")
    assert whoami.json()["headers"]
    # Scopes and audience are limited as for client_credentials; scope is checked first.
    narrow = exchange(gw, entry["token"], scope="read", audience="https://api.example")
    assert narrow.status_code == 200 and narrow.json()["scope"] == "read"
    assert jwt.decode(narrow.json()["access_token"], options={"verify_signature": False})["aud"] == "https://api.example"
    assert exchange(gw, entry["token"], scope="admin").json()["error"] == "invalid_scope"
    assert exchange(gw, entry["token"], audience="https://other.example").json()["error"] == "invalid_target"


def test_external_assertion_on_the_jwt_bearer_grant(gw: Gateway, entry: dict[str, Any]) -> None:
    grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    with http_client() as http:
        response = within(1.5, lambda: (r := http.post(gw.token_url, data={"grant_type": grant_type, "assertion": entry["token"]}))
                          .status_code == 200 and r, "trust")
        claims = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
        assert claims["sub"] == entry["clientId"] and "issued_token_type" not in response.json()
        as_header = http.post(gw.token_url, data={"grant_type": grant_type}, headers={"Authorization": f"Bearer {entry['token']}"})
        assert as_header.status_code == 200, as_header.text


def test_exchange_errors_issue_nothing(gw: Gateway, issuer: Issuer, entry: dict[str, Any]) -> None:
    within(1.5, lambda: exchange(gw, entry["token"]).status_code == 200, "trust")
    issued = gw.tokens_issued()
    with Issuer() as stranger:
        cases = {
            "untrusted issuer": (exchange(gw, stranger.github("https://gw.example")), 400, "invalid_grant"),
            "no matching entry": (exchange(gw, issuer.github("https://gw.example", repository="acme/other")), 400, "invalid_grant"),
            "expired": (exchange(gw, issuer.token({"sub": f"repo:{entry['repository']}:ref:refs/heads/main", "aud": "https://gw.example"},
                                                  exp=int(time.time()) - 100)), 400, "invalid_grant"),
            "not a JWT": (exchange(gw, "opaque-token"), 400, "invalid_grant"),
            "token type": (exchange(gw, entry["token"], subject_token_type="urn:ietf:params:oauth:token-type:saml2"), 400, "invalid_request"),
            "actor token": (exchange(gw, entry["token"], actor_token=entry["token"], actor_token_type="urn:ietf:params:oauth:token-type:jwt"),
                            400, "invalid_request"),
            "requested type": (exchange(gw, entry["token"], requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
                               400, "invalid_request"),
            "client credentials too": (exchange(gw, entry["token"], client_id=entry["clientId"], client_secret="x"), 400, "invalid_request"),
        }
    for name, (response, status, error) in cases.items():
        assert response.status_code == status and response.json()["error"] == error, (name, response.text)
        assert response.headers["cache-control"] == "no-store", name
    assert gw.tokens_issued() == issued


def test_deleted_entry_refused_within_one_second_on_every_worker(
    gw: Gateway, admin: Api, entry: dict[str, Any], recorder: Upstream
) -> None:
    exchanged = within(1.5, lambda: (r := exchange(gw, entry["token"])).status_code == 200 and r, "trust").json()["access_token"]
    credentials = [entry["token"], exchanged]
    warm_every_worker(gw, recorder, "/whoami", credentials, new_mark())
    assert admin.delete(f"/v1/identities/{entry['identityId']}").status_code == 204
    after_deadline_every_request(gw, "/whoami", credentials, time.monotonic(), assert_invalid_token)
    assert exchange(gw, entry["token"]).json()["error"] == "invalid_grant"


def test_changed_conditions_end_exchanged_tokens(gw: Gateway, admin: Api, issuer: Issuer, entry: dict[str, Any]) -> None:
    exchanged = within(1.5, lambda: (r := exchange(gw, entry["token"])).status_code == 200 and r, "trust").json()["access_token"]
    assert proxy(gw, "/whoami", exchanged).status_code == 200
    path = f"/v1/identities/{entry['identityId']}"
    body = {k: entry[k] for k in ("issuer", "audience", "clientId", "preset")}
    changed = admin.put(path, json={**body, "conditions": {"sub": f"repo:{entry['repository']}:environment:prod"}})
    assert changed.status_code == 200, changed.text
    after_deadline_every_request(gw, "/whoami", [exchanged, entry["token"]], time.monotonic(), assert_invalid_token, requests_each=4)
    prod = issuer.github("https://gw.example", repository=entry["repository"], sub=f"repo:{entry['repository']}:environment:prod")
    assert proxy(gw, "/whoami", prod).status_code == 200


def test_authress_sdk_manages_with_an_external_token(gw: Gateway, admin: Api, entry: dict[str, Any]) -> None:
    """A CI job's token, no stored secret: the SDK sends it as the bearer of admin API calls."""
    grant(admin, entry["clientId"], "gateway:clients:*", "/gateway/clients")
    sdk = AuthressClient(authress_api_url=gw.admin_url)
    sdk.set_token(entry["token"])

    def listed() -> bool:
        try:
            return sdk.service_clients.get_clients(limit=5).clients is not None
        except Exception:
            return False

    within(1.5, listed, "the grant")
    made = sdk.service_clients.create_client(Client(name=unique("from-ci")))
    assert made.client_id.startswith("sc_")
    audit = admin.get("/v1/audit", params={"limit": 50}).json()
    entries = next(v for k, v in audit.items() if isinstance(v, list))
    assert any(e["actor"] == entry["clientId"] and e["action"] == "client.create" for e in entries)
    # It cannot do what its client may not: identities are not granted.
    listing = gw.admin(entry["token"]).get("/v1/identities")
    assert listing.status_code == 403, listing.text
