"""The upstream client through the real gateway: a scripted raw-socket upstream that misbehaves
on purpose (tests/support/rawupstream.py) and the recording upstream for normal traffic."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Gateway, running_gateway
from tests.support.processes import Upstream
from tests.support.rawupstream import RawUpstream

POLICY = """\
upstreams:
  raw:
    url: {raw}
    timeout: 1s
    connect_timeout: 1s
    pool_size: 4
    pool_timeout: 1s
  one:  # a single pooled connection: which one is reused is certain
    url: {raw}
    timeout: 1s
    pool_size: 1
  main:
    url: {main}
    timeout: 10s
routes:
  - {{id: raw, match: "* /raw/{{rest*}}", upstream: raw, auth: none}}
  - {{id: one, match: "* /one/{{rest*}}", upstream: one, auth: none}}
  - {{id: echo, match: "* /echo/{{rest*}}", upstream: main, auth: none}}
"""


@pytest.fixture(scope="module")
def raw() -> Iterator[RawUpstream]:
    with RawUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, raw: RawUpstream, upstream: Upstream
) -> Iterator[Gateway]:
    policies = tmp_path_factory.mktemp("policies")
    path: Path = policies / "routes.yaml"
    path.write_text(POLICY.format(raw=raw.url, main=upstream.url))
    with running_gateway(tmp_path_factory.mktemp("gateway"), [path]) as gw:
        yield gw
