"""Fixtures of the identity suite.

One recording upstream per session, and one running gateway per store backend (SQLite file,
PostgreSQL schema), started lazily and shared by the tests that only add their own clients, keys,
roles and records (each test names its objects uniquely, so nothing one test does is visible to
another's assertions). The shared gateways run two worker processes, so revocation is always
tested across workers. Tests that kill, restart or re-initialise a gateway make their own.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.identity.harness import Api, Gateway, Recorder, write_policy

PG_BASE = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _pg_unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3):
            return None
    except Exception as exc:
        return f"no PostgreSQL at {PG_BASE} ({type(exc).__name__})"


_PG_REASON = _pg_unavailable()


def require_postgres() -> None:
    if _PG_REASON:
        if os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {_PG_REASON}")
        pytest.skip(_PG_REASON)


class Schemas:
    """Fresh PostgreSQL schemas (as store URLs), dropped at the end."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def new(self) -> str:
        require_postgres()
        import psycopg

        schema = "idt_" + secrets.token_hex(6)
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        self.names.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    def drop_all(self) -> None:
        if not self.names:
            return
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            for schema in self.names:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self.names.clear()


@pytest.fixture(scope="session")
def schemas() -> Iterator[Schemas]:
    made = Schemas()
    try:
        yield made
    finally:
        made.drop_all()


@pytest.fixture(scope="session")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    server = Recorder(tmp_path_factory.mktemp("recorder"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def policy_file(tmp_path_factory: pytest.TempPathFactory, recorder: Recorder) -> Path:
    return write_policy(tmp_path_factory.mktemp("policy"), recorder.url)


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
            gw = Gateway(
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
def mark() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def admin_of() -> Iterator[Callable[..., Api]]:
    """An admin API client for a gateway and key, closed after the test."""
    made: list[Api] = []

    def make(gw: Gateway, key: str | None = "admin") -> Api:
        api = gw.admin(key)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()
