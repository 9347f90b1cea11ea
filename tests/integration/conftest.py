"""Integration fixtures: the real gateway (`python -m gateway serve`) and a real recording upstream
(`tests.support.upstream` under uvicorn), each a process on ephemeral ports of 127.0.0.1.

Processes are session-scoped where tests only read from them, and function-scoped where a test
changes them (reload, shutdown). Every process is stopped in teardown.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.harness import Gateway, running_gateway
from tests.support.processes import Upstream, http_client

POLICY = """\
upstreams:
  main:
    url: http://127.0.0.1:{upstream}
    timeout: 10s
    connect_timeout: 2s
  short:
    url: http://127.0.0.1:{upstream}
    timeout: 0.5s
    retries: 0
  dead:
    url: http://127.0.0.1:{dead}
    connect_timeout: 1s
    retries: 0

routes:
  # specificity: literal over {{x}} over {{x*}}
  - {{id: users-me, match: GET /v1/users/me, upstream: main, auth: none}}
  - {{id: users-one, match: "GET /v1/users/{{userId}}", upstream: main, auth: none}}
  - {{id: users-rest, match: "GET /v1/users/{{rest*}}", upstream: main, auth: none}}
  # the first differing segment decides (segment 2: literal `a` beats {{x}})
  - {{id: first-literal, match: "GET /spec/a/{{x}}", upstream: main, auth: none}}
  - {{id: first-param, match: "GET /spec/{{x}}/b", upstream: main, auth: none}}
  # a named method beats `*`
  - {{id: method-post, match: POST /methods/x, upstream: main, auth: none}}
  - {{id: method-any, match: "* /methods/x", upstream: main, auth: none}}
  # GET answers HEAD unless a HEAD route exists
  - {{id: head-get-only, match: GET /head/implicit, upstream: main, auth: none}}
  - {{id: head-get, match: GET /head/explicit, upstream: main, auth: none}}
  - {{id: head-head, match: HEAD /head/explicit, upstream: main, auth: none}}
  # a trailing slash is a different path
  - {{id: slash-bare, match: GET /slash/x, upstream: main, auth: none}}
  - {{id: slash-trailing, match: GET /slash/x/, upstream: main, auth: none}}
  - {{id: slash-only-bare, match: GET /slash/y, upstream: main, auth: none}}
  # paths, headers, bodies
  - {{id: files, match: "GET /files/{{path*}}", upstream: main, auth: none}}
  - {{id: echo, match: "* /echo/{{rest*}}", upstream: main, auth: none}}
  # upstream failures
  - {{id: slow, match: GET /slow, upstream: short, auth: none}}
  - {{id: dead, match: GET /dead, upstream: dead, auth: none}}
  # protected routes: no authenticator exists yet, so these answer 401
  - id: read-document
    match: "GET /v1/docs/{{docId}}"
    upstream: main
    permission: documents:read
    resource: "/docs/{{docId}}"
  - {{id: create-event, match: POST /v1/events, upstream: main, scopes: [event.create]}}
"""


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="session")
def dead_port() -> Iterator[int]:
    """A port that refuses connections: bound (so no one else takes it) but not listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, dead_port: int) -> Path:
    path = tmp_path_factory.mktemp("policies") / "routes.yaml"
    path.write_text(POLICY.format(upstream=upstream.port, dead=dead_port))
    return path


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    """The main gateway: default limits, no trusted proxies, one worker."""
    with running_gateway(tmp_path_factory.mktemp("gateway"), [policy_file]) as gw:
        yield gw


@pytest.fixture(scope="session")
def http() -> Iterator[httpx.Client]:
    with http_client() as client:
        yield client
