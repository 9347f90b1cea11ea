"""Fixtures of the OAuth2 token server tests: the recording upstream, gateway deployments on
SQLite or a PostgreSQL schema of their own, and service clients with their credentials.

One gateway (`gw`, SQLite, one worker) is shared by the modules that need no special settings;
its throttle limits are set high so that the many deliberate failures of the error tests never
reach them. Modules with settings of their own (workers, throttle, rotation, stores) launch
their own deployments with `launch`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import _PG_UNAVAILABLE, PG_BASE
from tests.oauth.harness import API_AUDIENCE, Gateway, Recorder, write_policy

Launch = Callable[..., Gateway]

# The shared deployment never throttles (the error tests fail on purpose, many times a minute).
NO_THROTTLE = {"failures_per_client": 100_000, "failures_per_address": 100_000}


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    recorder = Recorder(tmp_path_factory.mktemp("upstream"))
    try:
        yield recorder
    finally:
        recorder.stop()


def _launcher(tmp_path_factory: pytest.TempPathFactory, upstream: Recorder) -> tuple[Launch, list[Gateway]]:
    started: list[Gateway] = []

    def launch(
        name: str = "gw", *, store: str | None = None, init: bool = True, start: bool = True, **kwargs: Any
    ) -> Gateway:
        directory = tmp_path_factory.mktemp(name)
        policy = write_policy(directory / "policies", upstream.url)
        gw = Gateway(directory, store or f"sqlite:///{directory}/gateway.db", [policy], **kwargs)
        started.append(gw)
        if init:
            gw.init()
        if start:
            gw.start()
        return gw

    return launch, started


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory, upstream: Recorder) -> Iterator[Launch]:
    """Start gateways for one module; all are stopped at its end."""
    fn, started = _launcher(tmp_path_factory, upstream)
    try:
        yield fn
    finally:
        for gw in started:
            gw.stop()


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Recorder) -> Iterator[Gateway]:
    """The shared deployment: SQLite, one worker, default token settings, no throttling."""
    fn, started = _launcher(tmp_path_factory, upstream)
    try:
        yield fn("shared", throttle=NO_THROTTLE)
    finally:
        for g in started:
            g.stop()


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[Callable[[], str]]:
    """Fresh PostgreSQL schemas (as store URLs) for one module, dropped at its end."""
    if _PG_UNAVAILABLE:
        pytest.skip(_PG_UNAVAILABLE)
    import psycopg

    made: list[str] = []

    def make() -> str:
        schema = "t_oauth_" + secrets.token_hex(5)
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        made.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    try:
        yield make
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            for schema in made:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


# --- service clients ------------------------------------------------------------------------------


@dataclass
class Svc:
    """A service client made for one test, with what it was given."""

    client_id: str
    scopes: list[str]
    audiences: list[str]
    tenant: str | None = None
    secret: str = ""
    secret_id: str = ""
    access_key: str = ""
    key_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def new_client(
    gw: Gateway,
    *,
    scopes: tuple[str, ...] = ("things.read", "things.write"),
    audiences: tuple[str, ...] = (API_AUDIENCE,),
    tenant: str | None = None,
    secret: bool = True,
    access_key: bool = False,
    **body: Any,
) -> Svc:
    api = gw.admin()
    payload: dict[str, Any] = {
        "name": f"svc-{uuid.uuid4().hex[:8]}",
        "scopes": list(scopes),
        "audiences": list(audiences),
    }
    if tenant:
        payload["tenant"] = tenant
    payload.update(body)
    created = api.create_client(**payload)
    svc = Svc(created["clientId"], list(scopes), list(audiences), tenant, extra=created)
    if secret:
        made = api.create_secret(svc.client_id)
        svc.secret, svc.secret_id = made["clientSecret"], made["secretId"]
    if access_key:
        key = api.create_key(svc.client_id)
        svc.access_key, svc.key_id = key["accessKey"], key["keyId"]
    return svc
