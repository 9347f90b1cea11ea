"""Request size limits (config `limits`): 431 for headers, 413 for bodies, and the upstream is
not contacted for a request refused up front."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rawhttp
from tests.support.checks import error_body
from tests.support.harness import Gateway, running_gateway
from tests.support.processes import MARK, Upstream

MAX_HEADER_BYTES = 4096
MAX_HEADERS = 20
MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    limits = {"max_header_bytes": "4KiB", "max_headers": MAX_HEADERS, "max_body_bytes": "64KiB"}
    with running_gateway(tmp_path_factory.mktemp("limited"), [policy_file], limits=limits) as gw:
        yield gw


def wait_arrived(upstream: Upstream, mark: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = upstream.marked(mark)
        if records:
            return records[0]
        time.sleep(0.02)
    raise AssertionError("the request never reached the upstream")


def test_headers_over_max_header_bytes_are_431(limited: Gateway, upstream: Upstream, mark: str) -> None:
    request = rawhttp.build("GET", "/echo/big", [(MARK, mark), ("X-Big", "a" * (MAX_HEADER_BYTES + 100))])
    error_body(rawhttp.send(limited.port, request), 431, "request_too_large")
    assert upstream.marked(mark) == []


def test_headers_spread_over_many_lines_count_together(
    limited: Gateway, upstream: Upstream, mark: str
) -> None:
    # 10 headers of ~500 bytes: each is small, together they are over 4 KiB
    headers = [(f"X-Part-{i}", "b" * 500) for i in range(10)]
    error_body(
        rawhttp.send(limited.port, rawhttp.build("GET", "/echo/big", [(MARK, mark), *headers])),
        431,
        "request_too_large",
    )
    assert upstream.marked(mark) == []


def test_headers_under_max_header_bytes_pass(limited: Gateway, upstream: Upstream, mark: str) -> None:
    request = rawhttp.build("GET", "/echo/big", [(MARK, mark), ("X-Big", "a" * (MAX_HEADER_BYTES // 2))])
    assert rawhttp.send(limited.port, request).status == 200
    assert len(upstream.marked(mark)) == 1


def test_more_than_max_headers_is_431(limited: Gateway, upstream: Upstream, mark: str) -> None:
    headers = [(f"X-N-{i}", "1") for i in range(MAX_HEADERS + 1)]
    error_body(
        rawhttp.send(limited.port, rawhttp.build("GET", "/echo/many", [(MARK, mark), *headers])),
        431,
        "request_too_large",
    )
    assert upstream.marked(mark) == []


def test_max_headers_counts_repeated_names(limited: Gateway, upstream: Upstream, mark: str) -> None:
    headers = [("X-Same", str(i)) for i in range(MAX_HEADERS + 1)]
    error_body(
        rawhttp.send(limited.port, rawhttp.build("GET", "/echo/many", [(MARK, mark), *headers])),
        431,
        "request_too_large",
    )
    assert upstream.marked(mark) == []


def test_headers_under_max_headers_pass(limited: Gateway, upstream: Upstream, mark: str) -> None:
    headers = [(f"X-N-{i}", "1") for i in range(MAX_HEADERS - 5)]  # plus Host, Connection, mark
    assert (
        rawhttp.send(limited.port, rawhttp.build("GET", "/echo/many", [(MARK, mark), *headers])).status == 200
    )
    assert len(upstream.marked(mark)) == 1


def test_content_length_over_limit_is_413_before_the_body_is_sent(
    limited: Gateway, upstream: Upstream, mark: str
) -> None:
    # Only the head is sent: the gateway must answer from Content-Length alone, at once.
    head = rawhttp.build("POST", "/echo/upload", [(MARK, mark), ("Content-Length", str(MAX_BODY + 1))])
    with rawhttp.RawConnection(limited.port, timeout=5) as conn:
        conn.send(head)
        error_body(conn.response(), 413, "request_too_large")
    assert upstream.marked(mark) == []


def test_content_length_over_limit_with_body_is_413(limited: Gateway, upstream: Upstream, mark: str) -> None:
    request = rawhttp.build("POST", "/echo/upload", [(MARK, mark)], b"x" * (MAX_BODY + 1))
    error_body(rawhttp.send(limited.port, request), 413, "request_too_large")
    assert upstream.marked(mark) == []


def test_body_of_exactly_the_limit_passes(limited: Gateway, upstream: Upstream, mark: str) -> None:
    request = rawhttp.build("POST", "/echo/upload", [(MARK, mark)], b"x" * MAX_BODY)
    assert rawhttp.send(limited.port, request).status == 200
    [record] = upstream.marked(mark)
    assert record["body_bytes"] == MAX_BODY


def test_chunked_body_under_the_limit_passes(limited: Gateway, upstream: Upstream, mark: str) -> None:
    body = rawhttp.chunked(*[b"c" * 8192] * 8)  # exactly 64 KiB
    request = rawhttp.build("POST", "/echo/upload", [(MARK, mark), ("Transfer-Encoding", "chunked")], body)
    assert rawhttp.send(limited.port, request).status == 200
    [record] = upstream.marked(mark)
    assert record["body_bytes"] == MAX_BODY


def test_chunked_body_over_the_limit_sent_at_once_is_413(
    limited: Gateway, upstream: Upstream, mark: str
) -> None:
    body = rawhttp.chunked(*[b"c" * 16384] * 8)  # 128 KiB
    request = rawhttp.build("POST", "/echo/upload", [(MARK, mark), ("Transfer-Encoding", "chunked")], body)
    error_body(rawhttp.send(limited.port, request), 413, "request_too_large")
    assert all(not r["complete"] for r in upstream.marked(mark))


def test_chunked_body_growing_over_the_limit_mid_stream_is_413(
    limited: Gateway, upstream: Upstream, mark: str
) -> None:
    # The upstream has the request head and part of the body (it waits for the rest) when the
    # body grows over the limit: the caller gets 413, the upstream never gets a complete body.
    head = rawhttp.build("POST", "/echo/upload", [(MARK, mark), ("Transfer-Encoding", "chunked")])
    with rawhttp.RawConnection(limited.port, timeout=10) as conn:
        conn.send(head + rawhttp.chunked(b"a" * 32768, end=False))
        wait_arrived(upstream, mark)
        conn.send(rawhttp.chunked(*[b"b" * 16384] * 6))
        error_body(conn.response(), 413, "request_too_large")
    time.sleep(0.2)
    [record] = upstream.marked(mark)
    assert not record["complete"]
    assert record["body_bytes"] is None


def test_chunked_body_growing_over_the_limit_after_upstream_answered(
    limited: Gateway, upstream: Upstream, mark: str
) -> None:
    # The upstream answers before reading the body; what the caller gets is that answer (the
    # gateway cannot take back a response it has started), never a 500, and the gateway serves on.
    head = rawhttp.build("POST", "/echo/upload?up_early=1", [(MARK, mark), ("Transfer-Encoding", "chunked")])
    with rawhttp.RawConnection(limited.port, timeout=10) as conn:
        conn.send(head + rawhttp.chunked(b"a" * 32768, end=False))
        wait_arrived(upstream, mark)
        conn.send(rawhttp.chunked(*[b"b" * 16384] * 6))
        response = conn.response()
    assert response.status in (200, 413), response.body
    if response.status == 200:
        assert response.json() == {"early": True}
    follow_up = rawhttp.send(limited.port, rawhttp.build("GET", "/echo/after", [(MARK, mark + "-after")]))
    assert follow_up.status == 200
    assert "failed inside the gateway" not in limited.log()
