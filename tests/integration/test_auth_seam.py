"""The authentication seam of protected routes (contract §4 "Errors the gateway itself returns"):
without a valid credential a route that is not `auth: none` answers 401, the request is never
forwarded, and the challenge follows RFC 6750 §3."""

from __future__ import annotations

import pytest

from tests.support import rawhttp
from tests.support.checks import error_body
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream

PROTECTED = [("GET", "/v1/docs/42"), ("POST", "/v1/events")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_credential_is_401_with_bare_challenge(
    gateway: Gateway, upstream: Upstream, mark: str, method: str, path: str
) -> None:
    response = rawhttp.send(gateway.port, rawhttp.build(method, path, [(MARK, mark)]))
    error_body(response, 401, "invalid_token")
    assert response.all("www-authenticate") == ['Bearer realm="gateway"']
    assert upstream.marked(mark) == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-real-credential",
        "bearer not-a-real-credential",  # the scheme is case-insensitive
        "BEARER not-a-real-credential",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",  # an unsigned JWT
    ],
)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_invalid_bearer_credential_is_401_with_invalid_token_challenge(
    gateway: Gateway, upstream: Upstream, mark: str, method: str, path: str, authorization: str
) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build(method, path, [(MARK, mark), ("Authorization", authorization)])
    )
    error_body(response, 401, "invalid_token")
    [challenge] = response.all("www-authenticate")
    assert challenge.startswith('Bearer realm="gateway"'), challenge
    assert 'error="invalid_token"' in challenge
    assert "not-a-real-credential" not in challenge and "not-a-real-credential" not in response.body.decode()
    assert upstream.marked(mark) == []


@pytest.mark.parametrize("authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "Token abc"])
def test_malformed_authorization_is_401_invalid_token(
    gateway: Gateway, upstream: Upstream, mark: str, authorization: str
) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/v1/docs/42", [(MARK, mark), ("Authorization", authorization)])
    )
    error_body(response, 401, "invalid_token")
    [challenge] = response.all("www-authenticate")
    assert challenge.startswith('Bearer realm="gateway"')
    assert 'error="invalid_token"' in challenge
    assert upstream.marked(mark) == []


def test_two_authorization_headers_are_400(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    response = rawhttp.send(
        gateway.port,
        rawhttp.build(
            "GET",
            "/v1/docs/42",
            [
                (MARK, mark),
                ("Authorization", "Bearer first"),
                ("Authorization", "Bearer second"),
            ],
        ),
    )
    error_body(response, 400, "invalid_request")
    assert upstream.marked(mark) == []


def test_header_and_access_token_parameter_together_are_400(
    gateway: Gateway, upstream: Upstream, mark: str
) -> None:
    response = rawhttp.send(
        gateway.port,
        rawhttp.build(
            "GET",
            "/v1/docs/42?access_token=second",
            [
                (MARK, mark),
                ("Authorization", "Bearer first"),
            ],
        ),
    )
    error_body(response, 400, "invalid_request")
    assert upstream.marked(mark) == []


def test_credential_in_query_alone_is_refused(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    response = rawhttp.send(
        gateway.port, rawhttp.build("GET", "/v1/docs/42?access_token=abc", [(MARK, mark)])
    )
    assert response.status in (400, 401), response.body
    assert upstream.marked(mark) == []


def test_public_route_ignores_credentials(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    # auth: none never looks at Authorization (not even two of them), and never forwards it
    response = rawhttp.send(
        gateway.port,
        rawhttp.build(
            "GET",
            "/v1/users/me",
            [
                (MARK, mark),
                ("Authorization", "Bearer a"),
                ("Authorization", "Bearer b"),
            ],
        ),
    )
    assert response.status == 200
    [record] = upstream.marked(mark)
    assert all(name != "authorization" for name, _ in record["headers"])
