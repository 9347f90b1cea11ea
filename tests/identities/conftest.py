"""Fixtures of the trusted-identity suite: a local OIDC issuer on loopback (tests/support/issuer),
a recording upstream, and one shared gateway (SQLite, two workers) that trusts the issuer.

The gateway's JWKS settings are shortened (cache 1 s minimum, refetch at most every 1 s) so that
expiry, rotation and outage can be shown in seconds; the defaults (1 min, 30 s) are the same code
with larger numbers. Each test makes its own clients and entries, named uniquely.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import Api
from tests.support.harness import Gateway, write_policy
from tests.support.issuer import Issuer
from tests.support.processes import Upstream

ACCOUNT = "oidctest"
JWKS_SETTINGS = {"min_age": "1s", "refetch_interval": "1s", "timeout": "2s", "max_bytes": "256KiB"}

POLICY = """\
upstreams:
  documents:
    url: {upstream}
    timeout: 10s
routes:
  - id: whoami
    match: GET /whoami
    upstream: documents
    authenticated: true
  - id: read-document
    match: GET /v1/users/{{userId}}/documents/{{docId}}
    upstream: documents
    permission: documents:read
    resource: /users/{{userId}}/documents/{{docId}}
  - id: keys-only
    match: GET /keys-only
    upstream: documents
    authenticated: true
    auth: [access_key]
"""


@pytest.fixture(scope="session")
def issuer() -> Iterator[Issuer]:
    with Issuer() as running:
        yield running


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("recorder")) as server:
        yield server


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Upstream) -> Path:
    return write_policy(tmp_path_factory.mktemp("policy"), POLICY.format(upstream=recorder.url))


def make_gateway(directory: Path, policy: Path, store: str | None = None, **settings: Any) -> Gateway:
    settings.setdefault("jwks", JWKS_SETTINGS)
    return Gateway(directory, store, [policy], account=ACCOUNT, **settings)


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, policy_file: Path, issuer: Issuer) -> Iterator[Gateway]:
    """The shared gateway; its config file trusts `issuer`'s `config-workload` tokens for
    `config-aud` as a client made before it starts (entry `from-config`)."""
    gateway = make_gateway(tmp_path_factory.mktemp("gw"), policy_file, workers=2, log_level="debug")
    gateway.init()
    client = gateway.run_json("clients", "create", "--name", "from-config")["clientId"]
    gateway.config["identities"] = [
        {"identityId": "from-config", "issuer": issuer.url, "audience": "config-aud", "clientId": client,
         "conditions": {"sub": "config-workload"}}
    ]
    gateway._pick_ports()  # writes the config file again, now with the entry
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture
def admin(gw: Gateway) -> Iterator[Api]:
    api = gw.admin(keep_alive=True)
    try:
        yield api
    finally:
        api.close()
