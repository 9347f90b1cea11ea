"""Ambiguous request paths are refused before anything else looks at them, and unambiguous ones
reach the upstream in one canonical encoding (contract §4 "Paths", gateway/paths.py).

Every request goes to `GET /files/{path*}`, a public route that would otherwise forward it, and
is sent over a raw socket so the request target reaches the gateway byte for byte."""

from __future__ import annotations

import pytest

from tests.support import rawhttp
from tests.support.checks import error_body
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream

AMBIGUOUS = [
    # an encoded separator inside a segment, any case
    "/files/a%2Fb",
    "/files/a%2fb",
    "/files/a%5Cb",
    "/files/a%5cb",
    # a raw backslash
    "/files/a\\b",
    "/files/\\..\\etc",
    # dot segments, raw and encoded in every mix
    "/files/./b",
    "/files/a/../b",
    "/files/..",
    "/files/.",
    "/files/a/..",
    "/files/%2e/b",
    "/files/%2E%2e/b",
    "/files/.%2e/b",
    "/files/%2e./b",
    "/files/%2E%2E",
    # empty segments
    "/files//b",
    "/files/a//b",
    "//files/a",
    # NUL and control characters, encoded
    "/files/a%00b",
    "/files/a%0ab",
    "/files/a%0D%0Ab",
    "/files/a%09b",
    "/files/a%1fb",
    "/files/a%7fb",
    # invalid UTF-8 after decoding (a lone byte, an overlong /)
    "/files/%ff",
    "/files/%c0%af",
    "/files/%C0%AE%C0%AE",
    "/files/caf%e9",
    # ; parameters, raw and encoded
    "/files/a;b",
    "/files/a;jsessionid=1",
    "/files/a%3bb",
    "/files/a%3Bb",
    "/files/..;/b",
    # double encoding
    "/files/%252e",
    "/files/%252e%252e/b",
    "/files/a%252fb",
    "/files/a%255cb",
    # malformed escapes
    "/files/%zz",
    "/files/%2",
    "/files/a%",
    "/files/a%g0",
]


@pytest.mark.parametrize("path", AMBIGUOUS)
def test_ambiguous_path_is_400_and_never_forwarded(
    gateway: Gateway, upstream: Upstream, mark: str, path: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", path, [(MARK, mark)]))
    error_body(response, 400, "invalid_request")
    assert upstream.marked(mark) == []


def test_ambiguous_path_refused_even_where_no_route_would_match(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    # The path check comes before matching: an unmatched ambiguous path is 400, not 404.
    response = rawhttp.send(gateway.port, rawhttp.build("GET", "/nowhere/%2e%2e/x", [(MARK, mark)]))
    error_body(response, 400, "invalid_request")
    assert upstream.marked(mark) == []


@pytest.mark.parametrize(
    ("sent", "forwarded"),
    [
        ("/files/plain-name_1.txt", "/files/plain-name_1.txt"),
        ("/files/a%20b", "/files/a%20b"),  # a space stays encoded
        ("/files/%41bc", "/files/Abc"),  # unreserved characters are sent raw
        ("/files/%2D%2e%5F%7E", "/files/-._~"),
        ("/files/caf%C3%A9", "/files/caf%C3%A9"),  # UTF-8, percent-encoded upper-case
        ("/files/caf%c3%a9", "/files/caf%C3%A9"),  # lower-case escapes come out upper-case
        ("/files/%21%24%26%27%28%29%2A%2B%2C%3D%3A%40", "/files/!$&'()*+,=:@"),  # sub-delims, : and @ raw
        ("/files/100%25", "/files/100%25"),  # a literal percent sign stays encoded
        ("/files/a%22b%3Cc%3E", "/files/a%22b%3Cc%3E"),
        ('/files/a"b<c>', "/files/a%22b%3Cc%3E"),  # raw characters outside the safe set get encoded
        ("/files/a%5Bb%5D", "/files/a%5Bb%5D"),
        ("/files/x/", "/files/x/"),  # the empty segment of a trailing / is kept
        ("/files/%E2%82%AC/%F0%9F%98%80", "/files/%E2%82%AC/%F0%9F%98%80"),
    ],
)
def test_unambiguous_path_forwarded_in_canonical_form(
    gateway: Gateway, upstream: Upstream, mark: str, sent: str, forwarded: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build("GET", sent, [(MARK, mark)]))
    assert response.status == 200, response.body
    [record] = upstream.marked(mark)
    assert record["raw_path"] == forwarded


def test_canonical_path_keeps_the_query_apart(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/files/caf%c3%a9?q=%c3%a9%2F", [(MARK, mark)])
    )
    assert response.status == 200, response.body
    [record] = upstream.marked(mark)
    assert record["raw_path"] == "/files/caf%C3%A9"
    assert record["query"] == "q=%c3%a9%2F"
