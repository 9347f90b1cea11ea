"""Fixtures of the hardening suite (issue 9): one recording upstream, and the identity suite's
routes in front of it. Tests that break a gateway on purpose start their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.identity.deployment import write_routes
from tests.support.processes import Upstream


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("recorder")) as server:
        yield server


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Upstream) -> Path:
    return write_routes(tmp_path_factory.mktemp("policy"), recorder.url)
