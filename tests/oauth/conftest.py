"""Fixtures of the OAuth2 token server tests: the recording upstream, gateway deployments on
SQLite or a PostgreSQL schema of their own, and service clients with their credentials.

One gateway (`gw`, SQLite, one worker) is shared by the modules that need no special settings;
its throttle limits are set high so that the many deliberate failures of the error tests never
reach them. Modules with settings of their own (workers, throttle, rotation, stores) launch
their own deployments with `launch`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.oauth.deployment import API_AUDIENCE, SETTINGS, write_routes
from tests.support.harness import Gateway, launcher
from tests.support.postgres import Schemas, require_postgres
from tests.support.processes import Upstream

Launch = Callable[..., Gateway]

# The shared deployment never throttles (the error tests fail on purpose, many times a minute).
NO_THROTTLE = {"failures_per_client": 100_000, "failures_per_address": 100_000}


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server


def _launcher(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> tuple[Launch, list[Gateway]]:
    return launcher(
        tmp_path_factory.mktemp,
        lambda directory: write_routes(directory / "policies", upstream.url),
        SETTINGS,
    )


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Launch]:
    """Start gateways for one module; all are stopped at its end."""
    fn, started = _launcher(tmp_path_factory, upstream)
    try:
        yield fn
    finally:
        for gw in started:
            gw.stop()


@pytest.fixture(scope="session")
def gw(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Gateway]:
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
    require_postgres()
    schemas = Schemas("t_oauth_")
    try:
        yield schemas.new
    finally:
        schemas.drop_all()


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
