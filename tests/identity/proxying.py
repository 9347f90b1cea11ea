"""Calling the gateway's proxy listener as a client would, and reading what the upstream saw."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from tests.support.checks import headers_named
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream, http_client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def call(
    http: httpx.Client, gw: Gateway, path: str, credential: str | None, mark: str | None = None
) -> httpx.Response:
    headers = bearer(credential) if credential is not None else {}
    if mark is not None:
        headers[MARK] = mark
    return http.get(gw.public_url + path, headers=headers)


def assert_invalid_token(response: httpx.Response) -> None:
    """The contract's 401: JSON body with exactly error, error_description, request_id, and a
    Bearer challenge with error="invalid_token"."""
    assert response.status_code == 401, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "error_description", "request_id"}, body
    assert body["error"] == "invalid_token"
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert isinstance(body["request_id"], str) and body["request_id"]
    challenge = response.headers.get("www-authenticate", "")
    assert challenge.lower().startswith("bearer "), challenge
    assert 'error="invalid_token"' in challenge, challenge


def identity_claims(gw: Gateway, token: str, audience: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify X-Gateway-Identity against the gateway's published JWKS; (header, claims)."""
    with http_client() as http:
        jwks = http.get(gw.public_url + "/.well-known/jwks.json").json()
    head = jwt.get_unverified_header(token)
    candidates = [k for k in jwks["keys"] if k.get("kid") == head.get("kid")]
    assert candidates, f"kid {head.get('kid')} not in the gateway's JWKS"
    key = jwt.PyJWK.from_dict(candidates[0]).key
    claims = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience=audience,
        options={"require": ["exp", "sub", "jti"]},
    )
    return head, claims


def warm_every_worker(
    gw: Gateway,
    recorder: Upstream,
    path: str,
    credentials: list[str],
    mark: str,
    attempts: int = 600,
    timeout: float = 60.0,
) -> None:
    """Send allowed requests over fresh connections until every worker has served (and so
    verified and cached) each credential. The kernel hands connections on the shared socket to
    whichever worker wakes first, so on a loaded machine this can take a few hundred tries.

    Which worker served a request shows in X-Gateway-Identity: a worker reuses its token for the
    same client, route, path and auth method for up to 30 s, so two different tokens issued less
    than 25 s apart come from two different workers.
    """
    started = time.monotonic()
    done: set[int] = set()
    with http_client(fresh=True) as fresh:
        for n in itertools.count():
            assert n < attempts and time.monotonic() - started < timeout, (
                f"could not reach all {gw.workers} workers with every credential "
                f"(reached: {sorted(done)} of {len(credentials)})"
            )
            i = n % len(credentials)
            response = call(fresh, gw, path, credentials[i], f"{mark}-{i}")
            assert response.status_code == 200, response.text
            if n % len(credentials) != len(credentials) - 1:
                continue
            for j in range(len(credentials)):
                if j in done:
                    continue
                tokens = {headers_named(r, "x-gateway-identity")[0] for r in recorder.marked(f"{mark}-{j}")}
                issued = sorted(jwt.decode(t, options={"verify_signature": False})["iat"] for t in tokens)
                if any(b - a < 25 for a, b in itertools.pairwise(issued)) or gw.workers == 1:
                    done.add(j)
            if len(done) == len(credentials):
                return


def after_deadline_every_request(
    gw: Gateway,
    path: str,
    credentials: list[str],
    changed_at: float,
    expect: Callable[[httpx.Response], None],
    deadline: float = 1.0,
    requests_each: int = 16,
    mark_after: str | None = None,
) -> list[int]:
    """Poll until `deadline` seconds after `changed_at` (any answer but 5xx), then send
    `requests_each` requests per credential over fresh connections (so every worker gets its
    share; marked with `mark_after`) and check each with `expect`. Returns the statuses seen
    before the deadline."""
    before: list[int] = []
    with http_client(fresh=True) as fresh:
        while time.monotonic() < changed_at + deadline:
            response = call(fresh, gw, path, credentials[len(before) % len(credentials)])
            assert response.status_code < 500, response.text
            before.append(response.status_code)
            time.sleep(0.02)
        for _ in range(requests_each):
            for credential in credentials:
                expect(call(fresh, gw, path, credential, mark_after))
    return before
