"""The decision endpoint over HTTP, as a front proxy (or a caller who found it) talks to it:
the real gateway process, its own decision listener and the admin listener."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.forward_auth.conftest import Deployment
from tests.identity.proxying import identity_claims
from tests.support.admin import Api
from tests.support.metrics import delta, scrape
from tests.support.processes import http_client


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client


@pytest.fixture(scope="module")
def stranger() -> Iterator[httpx.Client]:
    """A caller from 127.0.0.2: on loopback, but not one of the gateway's trusted_proxies."""
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), timeout=10.0) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "error_description", "request_id"}, body
    assert body["error"] == error, body
    assert response.headers["cache-control"] == "no-store"
    assert "x-gateway-client-id" not in response.headers and "x-accel-expires" not in response.headers


def test_a_granted_request_gets_the_identity_headers_the_proxy_would_add(
    deployment: Deployment, http: httpx.Client
) -> None:
    response = http.get(deployment.decisions_url + "/v1/docs/d1", headers=bearer(deployment.key))
    assert response.status_code == 200, response.text
    assert response.content == b""
    h = response.headers
    assert h["x-gateway-client-id"] == deployment.client_id
    assert h["x-gateway-route"] == "read-doc"
    assert h["x-gateway-auth-method"] == "access_key"
    assert h["cache-control"] == "private, max-age=1"
    assert h["x-accel-expires"] == "1"
    _, claims = identity_claims(deployment.gateway, h["x-gateway-identity"], audience="main")
    assert (claims["client_id"], claims["route"], claims["method"], claims["path"]) == (
        deployment.client_id,
        "read-doc",
        "GET",
        "/v1/docs/d1",
    )
    # The same through the proxy: the upstream sees the same set of identity headers.
    proxied = http.get(deployment.gateway.proxy_url + "/v1/docs/d1", headers=bearer(deployment.key))
    seen = {n for n, _ in proxied.json()["headers"] if n.startswith("x-gateway-")}
    assert seen == {n for n in h if n.startswith("x-gateway-")}


def test_the_admin_listener_answers_decisions_too_and_the_decision_listener_nothing_else(
    deployment: Deployment, http: httpx.Client
) -> None:
    gw = deployment.gateway
    response = http.get(gw.admin_url + "/v1/decisions/v1/docs/d1", headers=bearer(deployment.key))
    assert response.status_code == 200 and response.headers["x-gateway-route"] == "read-doc"
    assert http.get(gw.admin_url + "/healthz").status_code == 200
    base = deployment.decisions_url.removesuffix("/v1/decisions")
    for path in ("/v1/clients", "/metrics", "/healthz", "/v1/decisionsX/v1/docs/d1"):
        assert http.get(base + path, headers=bearer(gw.admin_key or "")).status_code == 404, path


@pytest.mark.parametrize(
    ("path", "credential", "status", "error"),
    [
        ("/v1/docs/d1", None, 401, "invalid_token"),
        ("/v1/docs/d1", "gwak_not-a-key", 401, "invalid_token"),
        ("/v1/docs/d2", "key", 403, "access_denied"),
        ("/v1/nothing/here", "key", 403, "not_found"),
        ("/v1/docs/%2e%2e/d1", "key", 403, "invalid_request"),
        ("/v1//docs/d1", "key", 403, "invalid_request"),
        ("/v1/docs%2Fd1", "key", 403, "invalid_request"),
        ("/v1/docs/d1;x=1", "key", 403, "invalid_request"),
        ("/v1/docs/d1?access_token=abc", "key", 403, "invalid_request"),
        ("/v1/events", "key", 403, "not_found"),  # a GET: the route is POST only
        ("", "key", 403, "invalid_request"),  # nothing to decide
    ],
)
def test_every_refusal_is_a_401_or_a_403_with_the_real_error_in_the_body(
    deployment: Deployment, http: httpx.Client, path: str, credential: str | None, status: int, error: str
) -> None:
    headers = {} if credential is None else bearer(deployment.key if credential == "key" else credential)
    response = http.get(deployment.decisions_url + path, headers=headers)
    assert_refused(response, status, error)
    if status == 401:
        assert response.headers["www-authenticate"].startswith('Bearer realm="gateway"')


def test_scopes_and_public_routes(deployment: Deployment, http: httpx.Client) -> None:
    response = http.post(deployment.decisions_url + "/v1/events", headers=bearer(deployment.key))
    assert_refused(response, 403, "insufficient_scope")
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    public = http.get(deployment.decisions_url + "/health")
    assert public.status_code == 200
    assert public.headers["x-gateway-auth-method"] == "none"
    assert "x-gateway-identity" not in public.headers


def test_the_query_plays_no_part_and_headers_over_the_limit_are_a_403(
    deployment: Deployment, http: httpx.Client
) -> None:
    response = http.get(deployment.decisions_url + "/v1/docs/d1?page=2&x=%2F", headers=bearer(deployment.key))
    assert response.status_code == 200
    big = {**bearer(deployment.key), "X-Filler": "x" * 20_000}
    assert_refused(http.get(deployment.decisions_url + "/v1/docs/d1", headers=big), 403, "request_too_large")


@pytest.mark.parametrize("family", ["forwarded", "original"])
def test_a_trusted_proxy_names_the_original_method_and_uri(
    deployment: Deployment, http: httpx.Client, family: str
) -> None:
    method, uri = (
        ("X-Forwarded-Method", "X-Forwarded-Uri")
        if family == "forwarded"
        else (
            "X-Original-Method",
            "X-Original-URI",
        )
    )
    url = deployment.decisions_url
    granted = http.post(url, headers={**bearer(deployment.key), method: "GET", uri: "/v1/docs/d1?a=b"})
    assert granted.status_code == 200 and granted.headers["x-gateway-route"] == "read-doc"
    _, claims = identity_claims(deployment.gateway, granted.headers["x-gateway-identity"], audience="main")
    assert (claims["method"], claims["path"]) == ("GET", "/v1/docs/d1")
    # The header's URI wins over the decision request's own path; its method over its own.
    assert_refused(
        http.get(url + "/v1/docs/d1", headers={**bearer(deployment.key), uri: "/v1/docs/d2"}),
        403,
        "access_denied",
    )
    assert_refused(
        http.get(url, headers={**bearer(deployment.key), method: "DELETE", uri: "/v1/docs/d1"}),
        403,
        "not_found",
    )
    assert_refused(
        http.get(url, headers={**bearer(deployment.key), uri: "/v1/docs/%2e%2e/d1"}), 403, "invalid_request"
    )
    assert_refused(
        http.get(url, headers={**bearer(deployment.key), method: "G T", uri: "/v1/docs/d1"}),
        403,
        "invalid_request",
    )


def test_original_headers_that_disagree_are_refused_not_picked_from(
    deployment: Deployment, http: httpx.Client
) -> None:
    url = deployment.decisions_url
    key = bearer(deployment.key)
    cases = [
        {"X-Forwarded-Uri": "/v1/docs/d1", "X-Original-URI": "/v1/docs/d2"},
        {"X-Forwarded-Uri": "/v1/docs/d1", "X-Original-Method": "POST", "X-Forwarded-Method": "GET"},
    ]
    for headers in cases:
        assert_refused(http.get(url, headers={**key, **headers}), 403, "invalid_request")
    twice = [
        ("Authorization", f"Bearer {deployment.key}"),
        ("X-Forwarded-Uri", "/v1/docs/d1"),
        ("X-Forwarded-Uri", "/v1/docs/d1"),
    ]
    assert_refused(http.get(url, headers=twice), 403, "invalid_request")
    same = http.get(url, headers={**key, "X-Forwarded-Uri": "/v1/docs/d1", "X-Original-URI": "/v1/docs/d1"})
    assert same.status_code == 200


def test_a_caller_that_is_not_a_trusted_proxy_cannot_choose_what_is_decided(
    deployment: Deployment, stranger: httpx.Client
) -> None:
    url = deployment.decisions_url
    key = bearer(deployment.key)
    # Its own path is decided (/v1/docs/d2, not granted), whatever the headers say.
    for uri in ("X-Forwarded-Uri", "X-Original-URI"):
        response = stranger.get(url + "/v1/docs/d2", headers={**key, uri: "/v1/docs/d1"})
        assert_refused(response, 403, "access_denied")
    response = stranger.post(url + "/v1/docs/d1", headers={**key, "X-Forwarded-Method": "GET"})
    assert_refused(response, 403, "not_found")  # decided as the POST it is
    # Without a path of its own there is nothing to decide, and the answer says why.
    response = stranger.get(url, headers={**key, "X-Original-URI": "/v1/docs/d1"})
    assert_refused(response, 403, "invalid_request")
    assert "not in trusted_proxies" in response.json()["error_description"]
    assert stranger.get(url + "/v1/docs/d1", headers=key).status_code == 200


def test_spoofed_identity_headers_on_the_decision_request_change_nothing(
    deployment: Deployment, http: httpx.Client
) -> None:
    spoofed = {**bearer(deployment.key), "X-Gateway-Client-Id": "admin", "X-Gateway-Tenant": "other"}
    response = http.get(deployment.decisions_url + "/v1/docs/d1", headers=spoofed)
    assert response.status_code == 200
    assert response.headers.get_list("x-gateway-client-id") == [deployment.client_id]
    assert "x-gateway-tenant" not in response.headers
    # What Envoy is to remove: the identity headers left out and other spellings it was sent.
    spoofed["X-Gateway.Route"] = "other"
    response = http.get(deployment.decisions_url + "/v1/docs/d1", headers=spoofed)
    remove = response.headers["x-envoy-auth-headers-to-remove"].split(",")
    assert remove == ["x-gateway-tenant", "x-gateway.route"]


def test_decisions_have_metrics_of_their_own(deployment: Deployment, http: httpx.Client) -> None:
    admin_url = deployment.gateway.admin_url
    before = scrape(admin_url)
    http.get(deployment.decisions_url + "/v1/docs/d1", headers=bearer(deployment.key))
    http.get(deployment.decisions_url + "/v1/docs/d2", headers=bearer(deployment.key))
    http.get(deployment.decisions_url + "/v1/nowhere", headers=bearer(deployment.key))
    after = scrape(admin_url)
    name = "gateway_decisions_total"
    assert delta(before, after, name, route="read-doc", code="2xx", decision="allow") == 1
    assert delta(before, after, name, route="read-doc", code="4xx", decision="denied") == 1
    assert delta(before, after, name, route="unmatched", code="4xx", decision="unmatched") == 1
    assert delta(before, after, "gateway_requests_total") == 0
    assert delta(before, after, "gateway_decision_duration_seconds_count", route="read-doc") == 2


def test_openapi_describes_the_decision_endpoint(deployment: Deployment, http: httpx.Client) -> None:
    document = http.get(deployment.gateway.admin_url + "/openapi.json").json()
    operations = document["paths"]["/v1/decisions/{path}"]
    assert {"get", "post", "delete"} <= set(operations)
    assert set(operations["get"]["responses"]) == {"200", "401", "403"}


def test_the_access_log_has_decisions_without_paths_queries_or_credentials(
    deployment: Deployment, http: httpx.Client
) -> None:
    gw = deployment.gateway
    start = len(gw.log())
    secret_query = "access_token=very-secret-query"
    response = http.get(
        deployment.decisions_url + "/v1/docs/d2?" + secret_query, headers=bearer(deployment.key)
    )
    assert response.status_code == 403
    http.get(deployment.decisions_url + "/v1/docs/d1", headers=bearer(deployment.key))
    log = gw.wait_for_log("decision=allow", start=start)
    assert 'decision "GET" 403' in log and "decision=invalid" in log
    assert 'decision "GET" 200' in log and "route=read-doc" in log
    for secret in (deployment.key, deployment.key.split(".")[-1], "very-secret-query", "/v1/docs/d2"):
        assert secret not in log


PARITY = [
    ("GET", "/v1/docs/d1", "key"),
    ("HEAD", "/v1/docs/d1", "key"),
    ("GET", "/v1/docs/d1", None),
    ("GET", "/v1/docs/d1", "gwak_bad"),
    ("GET", "/v1/docs/d2", "key"),
    ("DELETE", "/v1/docs/d1", "key"),
    ("POST", "/v1/events", "key"),
    ("GET", "/health", None),
    ("GET", "/nowhere", "key"),
    ("GET", "/v1/docs/%2e%2e/d1", "key"),
    ("GET", "/v1/docs/a%2Fb", "key"),
    ("GET", "/v1/docs/d1?access_token=x", "key"),
]


@pytest.mark.parametrize(("method", "path", "credential"), PARITY)
def test_the_decision_is_the_proxys_decision(
    deployment: Deployment, http: httpx.Client, method: str, path: str, credential: str | None
) -> None:
    """Same request, both front doors: the proxy's 200/401/403 is the decision's; its 400 or 404
    is the decision's 403 with the same error."""
    headers = {} if credential is None else bearer(deployment.key if credential == "key" else credential)
    proxied = http.request(method, deployment.gateway.proxy_url + path, headers=headers)
    decided = http.request(method, deployment.decisions_url + path, headers=headers)
    if proxied.status_code == 200:
        assert decided.status_code == 200
        if method != "HEAD":  # what reached the upstream through the proxy: the same identity
            seen = {
                n: v
                for n, v in proxied.json()["headers"]
                if n.startswith("x-gateway-") and n != "x-gateway-identity"
            }
            told = {n: v for n, v in decided.headers.items() if n in seen}
            assert told == seen and seen
        return
    assert decided.status_code == (proxied.status_code if proxied.status_code in (401, 403) else 403)
    if method != "HEAD":
        assert decided.json()["error"] == proxied.json()["error"]
        assert decided.json()["error_description"] == proxied.json()["error_description"]
    assert decided.headers.get("www-authenticate") == proxied.headers.get("www-authenticate")


def test_a_rate_limit_is_a_403_that_says_so(deployment: Deployment, admin: Api, http: httpx.Client) -> None:
    """The route allows 2 requests a minute per client (per worker with the local limiter)."""
    _, key = admin.new_client_with_key()
    answers = [http.get(deployment.decisions_url + "/v1/limited", headers=bearer(key)) for _ in range(8)]
    assert {a.status_code for a in answers} <= {200, 403}
    assert 2 <= sum(a.status_code == 200 for a in answers) <= 4  # two workers, two each at most
    limited = [a for a in answers if a.status_code == 403]
    assert limited and all(a.json()["error"] == "rate_limited" for a in limited)
    assert all(int(a.headers["retry-after"]) >= 1 for a in limited)
