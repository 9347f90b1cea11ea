"""Fixtures of the API-keys-as-a-service suite (issue 14): expiry, usage, rate limits.

One recording upstream and one shared gateway with two workers on SQLite, started lazily; tests
create their own clients and keys, so nothing one test does shows in another's assertions. Tests
that need their own settings (a Redis backend, a fail mode) start their own gateways.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Gateway, write_policy
from tests.support.processes import Upstream

ACCOUNT = "keytest"

POLICY = """\
upstreams:
  api:
    url: {upstream}
    timeout: 10s
routes:
  - id: whoami
    match: GET /whoami
    upstream: api
    authenticated: true
  - id: documents
    match: GET /v1/users/{{userId}}/documents/{{docId}}
    upstream: api
    permission: documents:read
    resource: /users/{{userId}}/documents/{{docId}}
  - id: limited
    match: GET /limited
    upstream: api
    authenticated: true
    rate_limit: {{requests: 3, window: 60s}}
  - id: open
    match: GET /open
    upstream: api
    auth: none
"""


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("recorder")) as server:
        yield server


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Upstream) -> Path:
    return write_policy(tmp_path_factory.mktemp("policy"), POLICY.format(upstream=recorder.url))


def new_gateway(directory: Path, policies: list[Path], **settings: object) -> Gateway:
    return Gateway(directory, None, policies, account=ACCOUNT, **settings)


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    """The shared gateway: two workers, SQLite, usage written every 0.5 s, access log on."""
    gateway = new_gateway(
        tmp_path_factory.mktemp("gw"),
        [policy_file],
        workers=2,
        usage={"flush_interval": "0.5s"},
        access_log=True,
    )
    gateway.init()
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
