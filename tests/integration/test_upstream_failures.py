"""Upstream failures (contract §4): unreachable → 502, silent beyond its timeout → 504, and a
response broken mid-body reaches the caller visibly truncated, without poisoning later requests."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.support import rawhttp
from tests.support.checks import error_body
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream

BREAK_AFTER = 65536  # the upstream announces 4× this, sends this much, then drops the connection


def test_unreachable_upstream_is_502(gateway: Gateway, http: httpx.Client) -> None:
    started = time.monotonic()
    response = http.get(gateway.proxy_url + "/dead")
    error_body(response, 502, "bad_gateway")
    assert time.monotonic() - started < 5


def test_upstream_silent_beyond_its_timeout_is_504(
    gateway: Gateway, upstream: Upstream, http: httpx.Client, mark: str
) -> None:
    started = time.monotonic()
    response = http.get(gateway.proxy_url + "/slow?up_sleep=3", headers={MARK: mark})
    elapsed = time.monotonic() - started
    error_body(response, 504, "gateway_timeout")
    assert 0.4 < elapsed < 2.5, elapsed  # the route's upstream has `timeout: 0.5s`
    assert len(upstream.marked(mark)) == 1  # it was asked, once (no retry after a timeout)


def test_upstream_answering_within_its_timeout_passes(gateway: Gateway, http: httpx.Client) -> None:
    assert http.get(gateway.proxy_url + "/slow?up_sleep=0.1").status_code == 200


def test_upstream_error_status_is_passed_through_not_rewritten(gateway: Gateway, http: httpx.Client) -> None:
    response = http.get(gateway.proxy_url + "/echo/status?up_status=503")
    assert response.status_code == 503
    assert response.json()["raw_path"] == "/echo/status"  # the upstream's body, not a gateway error


def test_response_broken_mid_body_with_length_is_truncated(gateway: Gateway, mark: str) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", f"/echo/break?up_break={BREAK_AFTER}", [(MARK, mark)])
    )
    assert response.status == 200
    assert response.get("content-length") == str(4 * BREAK_AFTER)
    assert not response.complete
    assert response.closed
    assert len(response.body) < 4 * BREAK_AFTER


def test_response_broken_mid_body_chunked_is_truncated(gateway: Gateway, mark: str) -> None:
    target = f"/echo/break?up_break={BREAK_AFTER}&up_chunked=1"
    response = rawhttp.send(gateway.port, rawhttp.build("GET", target, [(MARK, mark)]))
    assert response.status == 200
    assert response.get("transfer-encoding") == "chunked"
    assert not response.complete, "the gateway ended a broken response with a clean last chunk"
    assert response.closed


def test_httpx_sees_a_broken_response_as_an_error(gateway: Gateway, http: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        http.get(gateway.proxy_url + f"/echo/break?up_break={BREAK_AFTER}")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_gateway_serves_on_after_a_broken_response(
    gateway: Gateway, upstream: Upstream, mark: str, method: str
) -> None:
    for i in range(3):
        broken = rawhttp.send(gateway.port, rawhttp.build("GET", f"/echo/break?up_break={BREAK_AFTER}"))
        assert not broken.complete
        # POST is not retried by the gateway: it only works if the broken connection was dropped
        after = rawhttp.send(
            gateway.port, rawhttp.build(method, "/echo/after", [(MARK, f"{mark}-{i}")], b"payload")
        )
        assert after.status == 200, after.body
        assert after.complete
        assert after.json()["body_bytes"] == len(b"payload")
    assert "failed inside the gateway" not in gateway.log()
