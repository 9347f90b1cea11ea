"""Fixtures of the identity suite.

One recording upstream per session, and one running gateway per store backend (SQLite file,
PostgreSQL schema), started lazily and shared by the tests that only add their own clients, keys,
roles and records (each test names its objects uniquely, so nothing one test does is visible to
another's assertions). The shared gateways run two worker processes, so revocation is always
tested across workers. Tests that kill, restart or re-initialise a gateway make their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.identity.deployment import new_gateway, write_routes
from tests.support.admin import Api
from tests.support.harness import Gateway
from tests.support.postgres import Schemas, require_postgres
from tests.support.processes import Upstream

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def schemas() -> Iterator[Schemas]:
    made = Schemas("idt_")
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("recorder")) as server:
        yield server


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Upstream) -> Path:
    return write_routes(tmp_path_factory.mktemp("policy"), recorder.url)


def store_for(backend: str, directory: Path, schemas: Schemas) -> str:
    if backend == "sqlite":
        return f"sqlite:///{directory / 'gateway.db'}"
    return schemas.new()


@pytest.fixture(scope="session")
def deployments(
    tmp_path_factory: pytest.TempPathFactory, policy_file: Path, schemas: Schemas
) -> Iterator[Callable[[str], Gateway]]:
    """backend -> the shared, initialised and running gateway (two workers) on that backend."""
    running: dict[str, Gateway] = {}

    def get(backend: str) -> Gateway:
        if backend == "postgresql":
            require_postgres()
        if backend not in running:
            directory = tmp_path_factory.mktemp(f"gw-{backend}")
            gw = new_gateway(
                directory,
                store_for(backend, directory, schemas),
                [policy_file],
                workers=2,
                log_level="debug",
            )
            gw.init()
            gw.start()
            running[backend] = gw
        return running[backend]

    try:
        yield get
    finally:
        for gw in running.values():
            gw.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def gw(request: pytest.FixtureRequest, deployments: Callable[[str], Gateway]) -> Gateway:
    """The shared gateway, once per backend."""
    return deployments(request.param)


@pytest.fixture(scope="module")
def gw_sqlite(deployments: Callable[[str], Gateway]) -> Gateway:
    return deployments("sqlite")


@pytest.fixture
def admin_of() -> Iterator[Callable[..., Api]]:
    """An admin API client for a gateway and key (one connection pool), closed after the test."""
    made: list[Api] = []

    def make(gw: Gateway, key: str | None = "admin") -> Api:
        api = gw.admin(key, keep_alive=True)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()
