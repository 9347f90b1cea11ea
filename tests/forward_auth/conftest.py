"""Fixtures of the forward-auth suite: one recording upstream, one gateway (two workers) that
trusts 127.0.0.1 as its front proxy and answers decisions on a listener of its own, and one client with an access
key that may read `/docs/d1` (and nothing else), shared by the session. Tests that revoke make
their own clients."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.admin import Api
from tests.support.harness import Gateway, running_gateway
from tests.support.processes import Upstream, free_port

POLICY = """
upstreams:
  main: {{url: "http://127.0.0.1:{upstream}"}}
routes:
  - id: read-doc
    match: "GET /v1/docs/{{docId}}"
    upstream: main
    permission: documents:read
    resource: "/docs/{{docId}}"
  - {{id: create-event, match: POST /v1/events, upstream: main, scopes: [event.create]}}
  - {{id: health, match: GET /health, upstream: main, auth: none}}
  - {{id: limited, match: GET /v1/limited, upstream: main, authenticated: true, rate_limit: {{requests: 2, window: 1m}}}}
"""


@dataclass
class Deployment:
    gateway: Gateway
    upstream: Upstream
    decisions_url: str  # the decision listener's /v1/decisions
    client_id: str
    key: str  # may read /docs/d1


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with Upstream(tmp_path_factory.mktemp("upstream")) as upstream:
        policy = tmp_path_factory.mktemp("policy") / "routes.yaml"
        policy.write_text(POLICY.format(upstream=upstream.port))
        port = free_port()
        with running_gateway(
            tmp_path_factory.mktemp("gateway"),
            [policy],
            trusted_proxies=["127.0.0.1/32"],
            decisions={"listen": f"127.0.0.1:{port}"},
            access_log=True,
            workers=2,  # every revocation test is across workers
        ) as gw:
            admin = gw.admin()
            client_id, key = admin.new_client_with_key()
            admin.grant(client_id, ["documents:read"], ["/docs/d1"])
            admin.close()
            yield Deployment(gw, upstream, f"http://127.0.0.1:{port}/v1/decisions", client_id, key)


@pytest.fixture(scope="session")
def admin(deployment: Deployment) -> Iterator[Api]:
    api = deployment.gateway.admin()
    try:
        yield api
    finally:
        api.close()
