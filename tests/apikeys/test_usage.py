"""Usage counts and last use (issue 14 item 2): per client, hour and route, allowed and refused,
written in batches (the number of store writes does not grow with the number of requests)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.identity.proxying import call
from tests.support.harness import Gateway
from tests.support.processes import http_client


def usage_rows(gw: Gateway, client_id: str, **params: str) -> list[dict[str, Any]]:
    response = gw.admin().get(f"/v1/clients/{client_id}/usage", params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()["usage"]
    return rows


def totals(rows: list[dict[str, Any]]) -> dict[str, tuple[int, int]]:
    found: dict[str, tuple[int, int]] = {}
    for row in rows:
        allowed, refused = found.get(row["route"], (0, 0))
        found[row["route"]] = (allowed + row["allowed"], refused + row["refused"])
    return found


def wait_for(
    gw: Gateway, client_id: str, expected: dict[str, tuple[int, int]], timeout: float = 15.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = usage_rows(gw, client_id)
        if totals(rows) == expected or time.monotonic() > deadline:
            assert totals(rows) == expected, rows
            return rows
        time.sleep(0.2)


def test_usage_counts_allowed_and_refused_per_route_with_few_store_writes(gw: Gateway) -> None:
    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    key = admin.create_key(client_id)
    user = str(random.randrange(10**9, 10**10))
    admin.grant(client_id, ["documents:read"], [f"/users/{user}"])
    other_id, other_key = admin.new_client_with_key()
    flushes_before = gw.metric("gateway_usage_flushes_total", outcome="written")
    started = time.monotonic()
    allowed = 150
    with http_client() as http:
        for i in range(allowed):  # ten documents: most of these the decision memo answers
            response = call(http, gw, f"/v1/users/{user}/documents/{i % 10}", key["accessKey"])
            assert response.status_code == 200, response.text
        for i in range(3):  # no grant on another user's documents
            assert call(http, gw, f"/v1/users/1{user}/documents/{i}", key["accessKey"]).status_code == 403
        for _ in range(2):
            assert call(http, gw, "/whoami", key["accessKey"]).status_code == 200
        # Not this client's: another client's calls, unauthenticated calls, a public route.
        assert call(http, gw, "/whoami", other_key).status_code == 200
        assert call(http, gw, "/whoami", key["accessKey"][:-2] + "AA").status_code == 401
        assert call(http, gw, "/open", None).status_code == 200
    rows = wait_for(gw, client_id, {"documents": (allowed, 3), "whoami": (2, 0)})
    elapsed = time.monotonic() - started
    hour = datetime.now(UTC).strftime("%Y-%m-%dT%H:00:00Z")
    assert {r["hour"] for r in rows} <= {
        hour,
        (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:00:00Z"),
    }
    assert totals(usage_rows(gw, other_id)) == {"whoami": (1, 0)}
    # The access log names the client, allowed or refused, and never its key.
    lines = [
        line for line in gw.log().splitlines() if "gateway.access" in line and f"client={client_id}" in line
    ]
    assert any(" 200 " in line for line in lines) and any(" 403 " in line for line in lines), lines[-5:]
    assert key["accessKey"] not in gw.log()

    # Batches: at most one write per worker per flush interval (0.5 s), whatever the traffic.
    flushes = gw.metric("gateway_usage_flushes_total", outcome="written") - flushes_before
    bound = gw.workers * (elapsed / 0.5 + 2)
    assert 1 <= flushes <= bound, (flushes, bound, elapsed)
    assert flushes < allowed / 2

    # Last use, minute precision, on the key list.
    listed = admin.get(f"/v1/clients/{client_id}/access-keys").json()["accessKeys"]
    (shown,) = listed
    used = datetime.fromisoformat(shown["lastUsed"])
    assert used.second == 0 and used.microsecond == 0
    assert timedelta(0) <= datetime.now(UTC) - used < timedelta(minutes=2), shown


def test_a_client_secret_shows_its_last_use(gw: Gateway) -> None:
    from tests.oauth.helpers import basic

    admin = gw.admin()
    client_id = admin.create_client()["clientId"]
    secret = admin.create_secret(client_id)
    listed = admin.get(f"/v1/clients/{client_id}/secrets").json()["secrets"]
    assert listed[0]["lastUsed"] is None
    with http_client() as http:
        issued = http.post(
            gw.token_url,
            headers={"Authorization": basic(client_id, secret["clientSecret"])},
            data={"grant_type": "client_credentials"},
        )
    assert issued.status_code == 200, issued.text
    deadline = time.monotonic() + 10
    while admin.get(f"/v1/clients/{client_id}/secrets").json()["secrets"][0]["lastUsed"] is None:
        assert time.monotonic() < deadline, "lastUsed was never written"
        time.sleep(0.2)


def test_usage_window_and_validation(gw: Gateway) -> None:
    admin = gw.admin()
    client_id, key = admin.new_client_with_key()
    with http_client() as http:
        assert call(http, gw, "/whoami", key).status_code == 200
    wait_for(gw, client_id, {"whoami": (1, 0)})
    # A window in the past holds nothing; one around now holds the hour.
    past = datetime.now(UTC) - timedelta(days=3)
    assert (
        usage_rows(gw, client_id, **{"from": (past - timedelta(hours=2)).isoformat(), "to": past.isoformat()})
        == []
    )
    assert (
        len(usage_rows(gw, client_id, **{"from": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}))
        == 1
    )
    for params, field in (
        ({"from": "yesterday"}, "from"),
        ({"to": "2030-01-01T00:00:00"}, "to"),
        ({"from": "2030-01-02T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "from"),
        ({"from": "2029-01-01T00:00:00Z", "to": "2030-01-01T00:00:00Z"}, "from"),
    ):
        response = admin.get(f"/v1/clients/{client_id}/usage", params=params)
        assert response.status_code == 400, response.text
        assert response.json()["error_description"].startswith(f"{field}:")
    assert admin.get("/v1/clients/sc_nosuchclient0000000000000/usage").status_code == 404
    # A client without clients:read permission cannot read usage, even its own.
    assert gw.admin(key).get(f"/v1/clients/{client_id}/usage").status_code == 403


def test_openapi_describes_usage_expiry_and_rate_limits(gw: Gateway) -> None:
    with http_client() as http:
        document = http.get(gw.admin_url + "/openapi.json").json()
    assert "get" in document["paths"]["/v1/clients/{clientId}/usage"]
    schemas = document["components"]["schemas"]
    assert {"requests", "window", "burst"} <= set(schemas["Client"]["properties"]["rateLimit"]["properties"])
    assert {"expiresAt", "lastUsed"} <= set(schemas["AccessKey"]["properties"])
    assert {"expiresIn", "expiresAt"} <= set(schemas["Expiry"]["properties"])
