from __future__ import annotations

import ipaddress

import pytest

from gateway.errors import HeadersTooLarge, InvalidRequest, InvalidToken
from gateway.pipeline.authn import bearer_credential
from gateway.pipeline.forward.headers import (
    forwarding_headers,
    request_id_of,
    response_headers,
    sort_inbound,
)


def sort(headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    return sort_inbound(headers, 16384, 100)


def test_hop_by_hop_gateway_and_forwarding_headers_are_not_forwarded() -> None:
    inbound = sort(
        [
            (b"host", b"api.example"),
            (b"connection", b"keep-alive, X-Secret, x-other"),
            (b"keep-alive", b"timeout=5"),
            (b"te", b"trailers"),
            (b"upgrade", b"websocket"),
            (b"proxy-authorization", b"Basic abc"),
            (b"x-secret", b"1"),
            (b"x-other", b"2"),
            (b"x-gateway-client-id", b"sc_forged"),
            (b"x_gateway_subject", b"forged"),
            (b"x.gateway.route", b"forged"),
            (b"x-forwarded-for", b"6.6.6.6"),
            (b"forwarded", b"for=6.6.6.6"),
            (b"x-real-ip", b"6.6.6.6"),
            (b"expect", b"100-continue"),
            (b"authorization", b"Bearer t"),
            (b"accept", b"application/json"),
            (b"x-gatewayish", b"kept"),
        ]
    )
    assert inbound.forward == [(b"accept", b"application/json"), (b"x-gatewayish", b"kept")]
    assert inbound.authorization == [b"Bearer t"]
    assert inbound.host == b"api.example"


def test_header_limits() -> None:
    with pytest.raises(HeadersTooLarge):
        sort_inbound([(b"a", b"x")] * 101, 16384, 100)
    with pytest.raises(HeadersTooLarge):
        sort_inbound([(b"a", b"x" * 20000)], 16384, 100)


def test_body_framing() -> None:
    assert sort([(b"content-length", b"10")]).has_body
    assert sort([(b"transfer-encoding", b"chunked")]).has_body
    assert not sort([(b"content-length", b"0")]).has_body
    with pytest.raises(InvalidRequest):
        sort([(b"content-length", b"10"), (b"content-length", b"11")])
    with pytest.raises(InvalidRequest):
        sort([(b"content-length", b"-1")])


def test_request_id_kept_only_when_well_formed() -> None:
    assert request_id_of(sort([(b"x-request-id", b"abc-123")]), b"gen") == b"abc-123"
    assert request_id_of(sort([(b"x-request-id", b"bad id\x01")]), b"gen") == b"gen"
    assert request_id_of(sort([(b"x-request-id", b"x" * 200)]), b"gen") == b"gen"
    assert request_id_of(sort([]), b"gen") == b"gen"


def test_forwarding_headers_replace_from_untrusted_and_extend_from_trusted() -> None:
    inbound = sort(
        [(b"host", b"h"), (b"x-forwarded-for", b"1.1.1.1, 10.0.0.5"), (b"x-forwarded-proto", b"https")]
    )
    headers, client = forwarding_headers(inbound, "203.0.113.9", "http", ())
    assert dict(headers) == {
        b"x-forwarded-for": b"203.0.113.9",
        b"x-forwarded-proto": b"http",
        b"x-forwarded-host": b"h",
    }
    assert client == "203.0.113.9"
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    headers, client = forwarding_headers(inbound, "10.0.0.7", "http", trusted)
    assert dict(headers)[b"x-forwarded-for"] == b"1.1.1.1, 10.0.0.5, 10.0.0.7"
    assert dict(headers)[b"x-forwarded-proto"] == b"https"
    assert client == "1.1.1.1"


def test_response_headers_drop_hop_by_hop_and_connection_named() -> None:
    raw = [  # names arrive lower-cased from the upstream connection
        (b"content-type", b"text/plain"),
        (b"connection", b"close, X-Internal"),
        (b"transfer-encoding", b"chunked"),
        (b"x-internal", b"1"),
        (b"x-request-id", b"upstream-echo"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]
    assert response_headers(raw) == [
        (b"content-type", b"text/plain"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_bearer_credential() -> None:
    assert bearer_credential([b"Bearer abc"], b"") == "abc"
    assert bearer_credential([b"bEaReR   abc  "], b"") == "abc"
    assert bearer_credential([], b"") is None
    with pytest.raises(InvalidRequest, match="more than one credential"):
        bearer_credential([b"Bearer a", b"Bearer b"], b"")
    with pytest.raises(InvalidRequest, match="more than one credential"):
        bearer_credential([b"Bearer a"], b"x=1&access_token=b")
    with pytest.raises(InvalidToken):
        bearer_credential([b"Basic dXNlcjpwYXNz"], b"")
    with pytest.raises(InvalidToken):
        bearer_credential([b"Bearer "], b"")
    with pytest.raises(InvalidToken):
        bearer_credential([b"Bearer    "], b"")
    with pytest.raises(InvalidToken):
        bearer_credential(["Bearer ab\u00e9".encode()], b"")  # not ASCII
    assert bearer_credential([b"Bearer a b "], b"") == "a b"  # as the general parse: after the first space
