"""Which headers cross the gateway, both ways (contract §4 "What the upstream receives").

Requests go over raw sockets where the exact header names, case, order and repetition matter."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import rawhttp
from tests.support.checks import gateway_like, headers_named
from tests.support.harness import Gateway, running_gateway
from tests.support.processes import MARK, Upstream, http_client

HOP_BY_HOP = (
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-connection",
    "proxy-authorization",
)
GENERATED_ID = re.compile(r"^[0-9a-f]{24}$")


@pytest.fixture(scope="module")
def trusting_gateway(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    """A second gateway that believes X-Forwarded-* from 127.0.0.1 (where the tests run)."""
    with running_gateway(
        tmp_path_factory.mktemp("trusting"), [policy_file], trusted_proxies=["127.0.0.1/32"]
    ) as gw:
        yield gw


def forwarded(
    gateway: Gateway,
    upstream: Upstream,
    mark: str,
    headers: list[tuple[str, str]],
    target: str = "/echo/headers",
) -> dict:
    """Send GET `target` with `headers` (raw, as written) and return what the upstream received."""
    response = rawhttp.send(gateway.port, rawhttp.build("GET", target, [(MARK, mark), *headers]))
    assert response.status == 200, response.body
    records = upstream.marked(mark)
    assert len(records) == 1, records
    return records[0]


def test_hop_by_hop_request_headers_are_removed(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    record = forwarded(
        gateway,
        upstream,
        mark,
        [
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5, max=100"),
            ("TE", "trailers"),
            ("Trailer", "X-Checksum"),
            ("Upgrade", "h2c"),
            ("Proxy-Connection", "keep-alive"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
            ("X-Keep-Me", "kept"),
        ],
    )
    names = [n for n, _ in record["headers"]]
    for name in ("keep-alive", "te", "trailer", "upgrade", "proxy-connection", "proxy-authorization"):
        assert name not in names, record["headers"]
    assert "dXNlcjpwYXNz" not in str(record["headers"])
    assert headers_named(record, "x-keep-me") == ["kept"]


def test_headers_named_in_connection_are_removed(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    record = forwarded(
        gateway,
        upstream,
        mark,
        [
            ("Connection", "X-DROP-ME, x-drop-too"),
            ("Connection", "keep-alive, X-Drop-Third"),
            ("X-Drop-Me", "1"),
            ("x-drop-too", "2"),
            ("X-Drop-Third", "3"),
            ("X-Keep-Me", "kept"),
        ],
    )
    names = [n for n, _ in record["headers"]]
    assert not {"x-drop-me", "x-drop-too", "x-drop-third"} & set(names), record["headers"]
    assert all("drop" not in v.lower() for v in headers_named(record, "connection"))
    assert headers_named(record, "x-keep-me") == ["kept"]


def test_transfer_encoding_from_the_caller_is_not_passed_on(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    request = rawhttp.build("POST", "/echo/chunked", [(MARK, mark), ("Transfer-Encoding", "chunked")], body)
    response = rawhttp.send(gateway.port, request)
    assert response.status == 200, response.body
    [record] = upstream.marked(mark)
    assert record["body_bytes"] == len(b"hello world")
    assert len(headers_named(record, "transfer-encoding")) <= 1  # at most the gateway's own framing


def test_inbound_x_gateway_headers_are_dropped_in_every_spelling(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    record = forwarded(
        gateway,
        upstream,
        mark,
        [
            ("X-Gateway-Client-Id", "evil-1"),
            ("x_gateway_client_id", "evil-2"),
            ("X.Gateway.Route", "evil-3"),
            ("X-GATEWAY-SUBJECT", "evil-4"),
            ("X-Gateway-Route", "evil-5"),
            ("X-Gateway-Route", "evil-6"),
            ("X-Gateway-Auth-Method", "access_key"),
            ("x-gateway-identity", "forged.jwt.token"),
            ("X_GATEWAY_TENANT", "evil-7"),
            ("X-Gateway.Scopes", "admin"),
            ("x-gateway-scopes", "admin"),
            ("X-Gateway-Future-Header", "evil-8"),
        ],
    )
    ours = sorted((n, v) for n, v in record["headers"] if gateway_like(n))
    assert ours == [("x-gateway-auth-method", "none"), ("x-gateway-route", "echo")]
    assert "evil" not in str(record["headers"]) and "forged" not in str(record["headers"])


def test_gateway_identity_headers_arrive_exactly_once(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    http.get(gateway.proxy_url + "/v1/users/me", headers={MARK: mark}).raise_for_status()
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-gateway-route") == ["users-me"]
    assert headers_named(record, "x-gateway-auth-method") == ["none"]
    assert not headers_named(record, "x-gateway-client-id")  # anonymous: no client, no subject
    assert not headers_named(record, "x-gateway-subject")


def test_forwarded_headers_replaced_from_untrusted_peer(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    record = forwarded(
        gateway,
        upstream,
        mark,
        [
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1, 10.0.0.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "evil.example"),
            ("Forwarded", "for=203.0.113.7;proto=https"),
            ("X-Real-IP", "203.0.113.7"),
        ],
    )
    assert headers_named(record, "x-forwarded-for") == ["127.0.0.1"]
    assert headers_named(record, "x-forwarded-proto") == ["http"]
    assert headers_named(record, "x-forwarded-host") == ["127.0.0.1"]  # the Host the caller sent
    assert not headers_named(record, "forwarded")
    assert not headers_named(record, "x-real-ip")
    assert "203.0.113.7" not in str(record["headers"])


def test_forwarded_headers_extended_from_trusted_proxy(
    trusting_gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    record = forwarded(
        trusting_gateway,
        upstream,
        mark,
        [
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-For", "198.51.100.1"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "api.example.com"),
        ],
    )
    assert headers_named(record, "x-forwarded-for") == ["203.0.113.7, 198.51.100.1, 127.0.0.1"]
    assert headers_named(record, "x-forwarded-proto") == ["https"]
    assert headers_named(record, "x-forwarded-host") == ["api.example.com"]


def test_forwarded_headers_started_by_trusted_proxy_when_absent(
    trusting_gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    record = forwarded(trusting_gateway, upstream, mark, [])
    assert headers_named(record, "x-forwarded-for") == ["127.0.0.1"]
    assert headers_named(record, "x-forwarded-proto") == ["http"]
    assert headers_named(record, "x-forwarded-host") == ["127.0.0.1"]


@pytest.mark.parametrize("request_id", ["abc-123", "req.2024:07@host_name-1", "A" * 128])
def test_well_formed_request_id_is_kept_and_echoed(
    gateway: Gateway, upstream: Upstream, mark: str, request_id: str
) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/echo/rid", [(MARK, mark), ("X-Request-Id", request_id)])
    )
    assert response.status == 200
    assert response.all("x-request-id") == [request_id]
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-request-id") == [request_id]


@pytest.mark.parametrize("request_id", ["has space", "<script>", "A" * 129, 'id"quoted', "ünicode"])
def test_malformed_request_id_is_replaced_and_echoed(
    gateway: Gateway, upstream: Upstream, mark: str, request_id: str
) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/echo/rid", [(MARK, mark), ("X-Request-Id", request_id)])
    )
    assert response.status == 200
    [echoed] = response.all("x-request-id")
    assert GENERATED_ID.match(echoed), echoed
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-request-id") == [echoed]


def test_request_id_generated_when_absent(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    first = http.get(gateway.proxy_url + "/echo/rid", headers={MARK: mark}).headers["x-request-id"]
    second = http.get(gateway.proxy_url + "/echo/rid", headers={MARK: mark}).headers["x-request-id"]
    assert GENERATED_ID.match(first) and GENERATED_ID.match(second) and first != second
    assert [headers_named(r, "x-request-id") for r in upstream.marked(mark)] == [[first], [second]]


def test_response_carries_one_request_id_even_when_upstream_sends_its_own(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/echo/rid?up_rid=from-upstream", [(MARK, mark)])
    )
    assert response.status == 200
    [echoed] = response.all("x-request-id")
    [record] = upstream.marked(mark)
    assert headers_named(record, "x-request-id") == [echoed]


def test_authorization_not_forwarded_on_public_route(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    record = forwarded(gateway, upstream, mark, [("Authorization", "Bearer s3cr3t-credential")])
    assert not headers_named(record, "authorization")
    assert "s3cr3t" not in str(record["headers"])


def test_hop_by_hop_response_headers_are_removed(gateway: Gateway, mark: str) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", "/echo/hop?up_hop=1", [(MARK, mark)]))
    assert response.status == 200
    names = [n for n, _ in response.headers]
    for name in ("keep-alive", "proxy-authenticate", "trailer", "x-resp-hop"):
        assert name not in names, response.headers
    assert all("x-resp-hop" not in v.lower() for v in response.all("connection"))
    assert response.all("x-resp-keep") == ["crosses"]


def test_several_set_cookie_headers_reach_the_caller(gateway: Gateway, mark: str) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", "/echo/cookie?up_cookie=1", [(MARK, mark)]))
    assert response.status == 200
    assert response.all("set-cookie") == ["first=1; Path=/", "second=2; Path=/"]


def test_upstream_cookies_are_not_replayed_into_later_requests(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    # One caller gets Set-Cookie from the upstream; a later caller (without cookies) must not
    # arrive upstream carrying them: the gateway's upstream client keeps no cookie jar.
    with http_client() as first_caller:
        first = first_caller.get(gateway.proxy_url + "/echo/cookie?up_cookie=1", headers={MARK: mark})
        assert first.headers.get_list("set-cookie")
    for _ in range(3):
        with http_client() as later_caller:
            later_caller.get(gateway.proxy_url + "/echo/cookie", headers={MARK: mark}).raise_for_status()
    records = upstream.marked(mark)
    assert len(records) == 4
    for record in records:
        assert not headers_named(record, "cookie"), record["headers"]
