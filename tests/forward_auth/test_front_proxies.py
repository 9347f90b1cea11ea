"""nginx, Traefik, Caddy (and the Envoy stand-in) in front of a recording upstream, with the
gateway as their decision service, configured by the recipes of docs/forward-auth.md.

What must hold behind every one of them: a granted request reaches the upstream with the
gateway's identity headers; no credential, a bad or revoked one, an ungranted resource, an
unmatched or ambiguous path never reach it; a caller's own X-Gateway-* headers never reach it;
a caller's own X-Forwarded-Uri / X-Original-URI cannot change what is decided.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.paths import canonicalize
from tests.forward_auth.conftest import Deployment
from tests.forward_auth.frontproxies import (
    FrontProxy,
    start_caddy,
    start_envoy_standin,
    start_nginx,
    start_traefik,
)
from tests.identity.proxying import identity_claims
from tests.support.admin import Api
from tests.support.checks import gateway_like, headers_named
from tests.support.processes import MARK, http_client
from tests.support.rawhttp import build, send

FRONTS = ["nginx", "nginx-cached", "traefik", "caddy", "envoy-standin"]


@pytest.fixture(scope="module", params=FRONTS)
def front(
    request: pytest.FixtureRequest, deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FrontProxy]:
    name: str = request.param
    directory = tmp_path_factory.mktemp(name)
    decisions = deployment.decisions_url.removeprefix("http://").removesuffix("/v1/decisions")
    upstream = f"127.0.0.1:{deployment.upstream.port}"
    if name.startswith("nginx"):
        proxy = start_nginx(directory, decisions, upstream, cached=name == "nginx-cached")
    elif name == "traefik":
        proxy = start_traefik(directory, decisions, upstream)
    elif name == "caddy":
        proxy = start_caddy(directory, decisions, upstream)
    else:
        proxy = start_envoy_standin(directory, decisions, upstream)
    proxy.name = name
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


def new_mark() -> str:
    return uuid.uuid4().hex


def reached(deployment: Deployment, mark: str) -> list[dict[str, object]]:
    return deployment.upstream.marked(mark)


def test_a_granted_request_reaches_the_upstream_with_the_identity_headers(
    front: FrontProxy, deployment: Deployment, http: httpx.Client
) -> None:
    mark = new_mark()
    response = http.get(
        front.url + "/v1/docs/d1?q=1", headers={"Authorization": f"Bearer {deployment.key}", MARK: mark}
    )
    assert response.status_code == 200, (response.status_code, response.text, front.log()[-2000:])
    (record,) = reached(deployment, mark)
    assert record["raw_path"] == "/v1/docs/d1" and record["query"] == "q=1"
    assert headers_named(record, "x-gateway-client-id") == [deployment.client_id]
    assert headers_named(record, "x-gateway-route") == ["read-doc"]
    assert headers_named(record, "x-gateway-auth-method") == ["access_key"]
    assert headers_named(record, "x-gateway-tenant") == []
    assert headers_named(record, "authorization") == []  # the credential stays at the edge
    (token,) = headers_named(record, "x-gateway-identity")
    _, claims = identity_claims(deployment.gateway, token, audience="main")
    assert (claims["client_id"], claims["method"], claims["path"]) == (
        deployment.client_id,
        "GET",
        "/v1/docs/d1",
    )


@pytest.mark.parametrize(
    ("method", "path", "credential", "status"),
    [
        ("GET", "/v1/docs/d1", None, 401),
        ("GET", "/v1/docs/d1", "gwak_not-a-key", 401),
        ("GET", "/v1/docs/d2", "key", 403),
        ("GET", "/v1/unrouted", "key", 403),
        ("POST", "/v1/docs/d1", "key", 403),  # granted for GET only
        ("POST", "/v1/events", "key", 403),  # a scope the key does not have
    ],
)
def test_refused_requests_never_reach_the_upstream(
    front: FrontProxy,
    deployment: Deployment,
    http: httpx.Client,
    method: str,
    path: str,
    credential: str | None,
    status: int,
) -> None:
    mark = new_mark()
    headers = {MARK: mark}
    if credential is not None:
        headers["Authorization"] = f"Bearer {deployment.key if credential == 'key' else credential}"
    response = http.request(
        method, front.url + path, headers=headers, content=b"body" if method == "POST" else None
    )
    assert response.status_code == status, (response.status_code, response.text)
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="gateway"')
    assert reached(deployment, mark) == []


@pytest.mark.parametrize(
    "target",
    [b"/v1/docs/%2e%2e/d1", b"/v1/docs/../docs/d1", b"/v1//docs/d1", b"/v1/docs%2Fd1", b"/v1/docs/d1;x=1"],
)
def test_ambiguous_paths_never_reach_the_upstream(
    front: FrontProxy, deployment: Deployment, target: bytes
) -> None:
    """Refused, or (Traefik cleans `..` and `//` itself, before it asks) forwarded as exactly the
    unambiguous path the gateway decided on: never as a path the upstream could read otherwise."""
    mark = new_mark()
    request = build("GET", target, [("Authorization", f"Bearer {deployment.key}"), (MARK, mark)])
    response = send(front.port, request)
    records = reached(deployment, mark)
    if response.status != 200:
        assert records == []
        return
    (record,) = records
    _, path = canonicalize(str(record["raw_path"]).encode())  # raises on an ambiguous path
    (token,) = headers_named(record, "x-gateway-identity")
    _, claims = identity_claims(deployment.gateway, token, audience="main")
    assert claims["path"] == path == record["raw_path"], (target, record["raw_path"])


def test_spoofed_identity_headers_never_reach_the_upstream(
    front: FrontProxy, deployment: Deployment, http: httpx.Client
) -> None:
    mark = new_mark()
    spoofed = [
        ("Authorization", f"Bearer {deployment.key}"),
        (MARK, mark),
        ("X-Gateway-Client-Id", "admin"),
        ("x-gateway-tenant", "other-tenant"),
        ("X-GATEWAY-SUBJECT", "someone"),
        ("X-Gateway-Identity", "forged.token.here"),
    ]
    response = http.get(front.url + "/v1/docs/d1", headers=spoofed)
    assert response.status_code == 200, (response.status_code, response.text)
    (record,) = reached(deployment, mark)
    assert headers_named(record, "x-gateway-client-id") == [deployment.client_id]
    assert headers_named(record, "x-gateway-tenant") == []
    assert headers_named(record, "x-gateway-subject") == headers_named(record, "x-gateway-client-id")
    assert "forged.token.here" not in headers_named(record, "x-gateway-identity")
    for variant in ("X_Gateway_Client_Id", "X-Gateway.Tenant"):
        mark = new_mark()
        request = build(
            "GET",
            "/v1/docs/d1",
            [("Authorization", f"Bearer {deployment.key}"), (MARK, mark), (variant, "admin")],
        )
        send(front.port, request)
        for record in reached(deployment, mark):
            spelt = [n for n, v in record["headers"] if gateway_like(n) and v == "admin"]  # type: ignore[union-attr]
            assert spelt == [], (variant, record["headers"])


def test_a_callers_own_original_uri_headers_cannot_change_what_is_decided(
    front: FrontProxy, deployment: Deployment, http: httpx.Client
) -> None:
    for header in ("X-Forwarded-Uri", "X-Original-URI"):
        for method_header in ("X-Forwarded-Method", "X-Original-Method"):
            mark = new_mark()
            headers = {
                "Authorization": f"Bearer {deployment.key}",
                MARK: mark,
                header: "/v1/docs/d1",
                method_header: "GET",
            }
            response = http.post(front.url + "/v1/docs/d2", headers=headers, content=b"x")
            assert response.status_code in (401, 403), (header, response.status_code)
            assert reached(deployment, mark) == []


def test_a_revoked_key_is_refused_within_two_seconds(
    front: FrontProxy, deployment: Deployment, admin: Api, http: httpx.Client
) -> None:
    client_id, key = admin.new_client_with_key()
    admin.grant(client_id, ["documents:read"], ["/docs/d1"])
    auth = {"Authorization": f"Bearer {key}"}
    assert http.get(front.url + "/v1/docs/d1", headers=auth).status_code == 200
    assert http.get(front.url + "/v1/docs/d1", headers=auth).status_code == 200  # warm (and cached)
    key_id = admin.get(f"/v1/clients/{client_id}/access-keys").json()
    keys = key_id.get("accessKeys", key_id.get("keys", key_id)) if isinstance(key_id, dict) else key_id
    assert admin.delete(f"/v1/clients/{client_id}/access-keys/{keys[0]['keyId']}").status_code in (200, 204)
    revoked = time.monotonic()
    while True:
        mark = new_mark()
        status = http.get(front.url + "/v1/docs/d1", headers={**auth, MARK: mark}).status_code
        if status == 401:
            break
        assert time.monotonic() - revoked < 2.5, (
            f"still {status} {time.monotonic() - revoked:.2f}s after revocation"
        )
        time.sleep(0.05)
    elapsed = time.monotonic() - revoked
    assert elapsed < 2.5
    mark = new_mark()
    assert http.get(front.url + "/v1/docs/d1", headers={**auth, MARK: mark}).status_code == 401
    assert reached(deployment, mark) == []


@pytest.mark.parametrize("front", ["nginx", "nginx-cached"], indirect=True)
def test_nginx_asks_the_gateway_once_per_credential_uri_and_second_when_caching(
    front: FrontProxy, deployment: Deployment, http: httpx.Client
) -> None:
    gw = deployment.gateway
    auth = {"Authorization": f"Bearer {deployment.key}"}
    http.get(front.url + "/v1/docs/d1?warm", headers=auth)
    before = gw.metric("gateway_decisions_total", route="read-doc")
    started = time.monotonic()
    for _ in range(10):
        assert http.get(front.url + "/v1/docs/d1?warm", headers=auth).status_code == 200
    asked = gw.metric("gateway_decisions_total", route="read-doc") - before
    if front.name == "nginx":
        assert asked == 10
    else:  # one cache lifetime is 1 s: at most one fresh decision per second that passed
        assert asked <= 1 + int(time.monotonic() - started), asked
