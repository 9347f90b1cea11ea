"""Routing through the real gateway (contract §4 "Policy files"): which route wins, what the
upstream receives, and that unmatched requests never leave the gateway."""

from __future__ import annotations

import httpx
import pytest

from tests.support import rawhttp
from tests.support.checks import error_body, headers_named
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream


def route_of(upstream: Upstream, mark: str) -> str:
    """The X-Gateway-Route the one marked request arrived with."""
    records = upstream.marked(mark)
    assert len(records) == 1, records
    values = headers_named(records[0], "x-gateway-route")
    assert len(values) == 1, records[0]["headers"]
    return values[0]


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/v1/users/me", "users-me"),  # literal beats {userId} and {rest*}
        ("/v1/users/42", "users-one"),  # {userId} beats {rest*}
        ("/v1/users/42/documents", "users-rest"),  # only {rest*} takes two segments
        ("/spec/a/b", "first-literal"),  # segment 2 decides: `a` beats {x}, whatever follows
        ("/spec/z/b", "first-param"),
    ],
)
def test_most_specific_route_wins(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str, path: str, route: str
) -> None:
    response = http.get(gateway.proxy_url + path, headers={MARK: mark})
    assert response.status_code == 200, response.text
    assert route_of(upstream, mark) == route
    assert upstream.marked(mark)[0]["raw_path"] == path


@pytest.mark.parametrize(
    ("method", "route"),
    [("POST", "method-post"), ("GET", "method-any"), ("DELETE", "method-any"), ("PURGE", "method-any")],
)
def test_named_method_beats_star(
    gateway: Gateway, upstream: Upstream, mark: str, method: str, route: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build(method, "/methods/x", [(MARK, mark)]))
    assert response.status == 200, response.body
    assert route_of(upstream, mark) == route
    assert upstream.marked(mark)[0]["method"] == method


def test_get_route_answers_head_forwarded_as_head(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    response = http.head(gateway.proxy_url + "/head/implicit", headers={MARK: mark})
    assert response.status_code == 200
    assert response.content == b""
    [record] = upstream.marked(mark)
    assert record["method"] == "HEAD"
    assert headers_named(record, "x-gateway-route") == ["head-get-only"]


def test_head_route_beats_get_route_for_head(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    http.head(gateway.proxy_url + "/head/explicit", headers={MARK: mark}).raise_for_status()
    assert route_of(upstream, mark) == "head-head"
    get_mark = mark + "-get"
    http.get(gateway.proxy_url + "/head/explicit", headers={MARK: get_mark}).raise_for_status()
    assert route_of(upstream, get_mark) == "head-get"


def test_head_on_post_only_route_is_not_found(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    # /v1/events has only a POST route: HEAD is answered by no route at all
    response = http.request("HEAD", gateway.proxy_url + "/v1/events", headers={MARK: mark})
    assert response.status_code == 404
    assert upstream.marked(mark) == []


def test_trailing_slash_is_a_different_path(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    http.get(gateway.proxy_url + "/slash/x", headers={MARK: mark + "-bare"}).raise_for_status()
    http.get(gateway.proxy_url + "/slash/x/", headers={MARK: mark + "-slash"}).raise_for_status()
    assert route_of(upstream, mark + "-bare") == "slash-bare"
    assert route_of(upstream, mark + "-slash") == "slash-trailing"
    assert upstream.marked(mark + "-slash")[0]["raw_path"] == "/slash/x/"


def test_trailing_slash_does_not_match_the_bare_route(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    response = http.get(gateway.proxy_url + "/slash/y/", headers={MARK: mark})
    error_body(response, 404, "not_found")
    assert upstream.marked(mark) == []


@pytest.mark.parametrize("method", ["get", "Get"])
def test_methods_are_case_sensitive(gateway: Gateway, upstream: Upstream, mark: str, method: str) -> None:
    # The only route for /v1/users/me is `GET`; a lower-case method must not reach it. (The HTTP
    # parser already refuses non-upper-case methods; whoever answers, it is a 4xx and nothing is
    # forwarded.)
    response = rawhttp.send(gateway.port, rawhttp.build(method, "/v1/users/me", [(MARK, mark)]))
    assert response.status in (400, 404, 405), response.body
    assert upstream.marked(mark) == []


def test_unmatched_request_gets_404_json_and_never_reaches_upstream(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    response = http.get(gateway.proxy_url + "/no/such/route", headers={MARK: mark})
    error_body(response, 404, "not_found")
    assert upstream.marked(mark) == []


def test_wrong_method_on_existing_path_is_404(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    response = http.delete(gateway.proxy_url + "/v1/users/me", headers={MARK: mark})
    error_body(response, 404, "not_found")
    assert upstream.marked(mark) == []


@pytest.mark.parametrize(
    "query",
    [
        "a=1&b=2",
        "x=%2F..%2f&y=%2e%2e%5c&z=;&&empty=",  # ambiguous in a path, harmless in a query
        "redirect=http://example.invalid/a?b=c",
        "path=/v1/users/42",  # a query that looks like another route plays no part in matching
    ],
)
def test_query_string_forwarded_unchanged_and_not_matched(
    gateway: Gateway, upstream: Upstream, mark: str, query: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", f"/v1/users/me?{query}", [(MARK, mark)]))
    assert response.status == 200, response.body
    [record] = upstream.marked(mark)
    assert record["query"] == query
    assert record["raw_path"] == "/v1/users/me"
    assert headers_named(record, "x-gateway-route") == ["users-me"]


def test_query_string_does_not_rescue_an_unmatched_path(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", "/nowhere?/v1/users/me", [(MARK, mark)]))
    error_body(response, 404, "not_found")
    assert upstream.marked(mark) == []
