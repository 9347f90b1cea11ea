"""Assertions shared by the integration tests."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.support.rawhttp import RawResponse


def _parts(response: httpx.Response | RawResponse) -> tuple[int, bytes, Any]:
    if isinstance(response, httpx.Response):
        return response.status_code, response.content, response.headers.get
    return response.status, response.body, response.get


def error_body(response: httpx.Response | RawResponse, status: int, error: str) -> dict[str, Any]:
    """Assert a gateway error in the contract's shape (§4 "Errors the gateway itself returns"):
    the status, a JSON body with exactly error / error_description / request_id, and the
    request id echoed in X-Request-Id. Returns the body."""
    actual, content, header = _parts(response)
    assert actual == status, f"expected {status}, got {actual}: {content[:300]!r}"
    content_type = header("content-type")
    assert content_type is not None and content_type.startswith("application/json"), content_type
    body = json.loads(content)
    assert set(body) == {"error", "error_description", "request_id"}, body
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"], body
    assert body["request_id"] and body["request_id"] == header("x-request-id"), (body, header("x-request-id"))
    return body


def headers_named(record: dict[str, Any], name: str) -> list[str]:
    """Every value of header `name` in an upstream record. Names are compared without case, so
    that a check that a header is absent cannot pass just because of how it was spelt."""
    return [v for n, v in record["headers"] if n.lower() == name.lower()]


def gateway_like(name: str) -> bool:
    """Whether a header name counts as X-Gateway-* by the contract's rule."""
    return name.lower().replace("_", "-").replace(".", "-").startswith("x-gateway-")


def eventually(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Poll `check()` until it is true (instead of sleeping, then asserting); how long that took.
    Fails naming `what` when it is not true within `timeout` seconds."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - start
