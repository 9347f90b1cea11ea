"""Fixtures of the hardening suite (issue 9): one recording upstream, and the identity suite's
routes in front of it. Tests that break a gateway on purpose start their own."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.identity.deployment import ACCOUNT, write_routes
from tests.support.harness import Gateway
from tests.support.processes import Upstream


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("recorder")) as server:
        yield server


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Upstream) -> Path:
    return write_routes(tmp_path_factory.mktemp("policy"), recorder.url)


@contextlib.contextmanager
def running(directory: Path, policy_file: Path, **settings: Any) -> Iterator[Gateway]:
    """An initialised gateway of the identity suite's account, serving until the block ends."""
    gw = Gateway(directory, None, [policy_file], account=ACCOUNT, **settings)
    gw.init()
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    """The suite's shared gateway (SQLite, one worker), for tests that only add their own
    clients, keys, roles and records. Tests that break or reconfigure a gateway start their own."""
    with running(tmp_path_factory.mktemp("gw"), policy_file) as gw:
        yield gw
