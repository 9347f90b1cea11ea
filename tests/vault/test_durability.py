"""One refresh at a time across workers and replicas, kill -9 in the middle of a refresh, and
sealed rows that must not open anywhere but where they belong."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable

import pytest

from gateway.crypto import load_sealer
from gateway.vault_models import REFRESH_TOKEN, binding
from tests.support.harness import Gateway
from tests.support.processes import http_client
from tests.vault.conftest import Launch, Provider, add_connection, connect_user, credentials_path, service

BURST = 50


def _burst(gateways: list[Gateway], key: str, connection: str, user: str) -> list[tuple[int, str]]:
    """BURST concurrent GETs spread over the gateways, each on a connection of its own (so the
    workers of each gateway share them), released together."""
    barrier = threading.Barrier(BURST)
    results: list[tuple[int, str]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        gw = gateways[i % len(gateways)]
        with http_client(30.0, fresh=True) as client:
            barrier.wait(10)
            response = client.get(
                gw.admin_url + credentials_path(connection, user), headers={"Authorization": f"Bearer {key}"}
            )
        with lock:
            results.append((response.status_code, response.json().get("accessToken", response.text)))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(BURST)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.fixture(scope="module")
def sqlite_gw(launch: Launch) -> Gateway:
    """A SQLite gateway with two workers (the kill -9 test, last in this module, kills it)."""
    return launch("burst-sqlite", workers=2)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fleet(request: pytest.FixtureRequest, launch: Launch) -> list[Gateway]:
    """SQLite: one gateway with two workers. PostgreSQL: two replicas with two workers each."""
    if request.param == "sqlite":
        return [request.getfixturevalue("sqlite_gw")]
    make_schema: Callable[[], str] = request.getfixturevalue("pg_schema")
    first = launch("burst-pg", store=make_schema(), workers=2)
    second = launch(
        "burst-pg-replica",
        store=first.store,
        init=False,
        public_url=first.public_url,
        master_key_file=first.master_key_file,
        workers=2,
    )
    second.admin_key = first.admin_key
    return [first, second]


@pytest.mark.slow
def test_concurrent_gets_cause_exactly_one_refresh(fleet: list[Gateway], provider: Provider) -> None:
    gw = fleet[0]
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=30)  # the login's access token is already too short to hand out
    connect_user(gw, provider, key, connection, "burst-user")
    provider.set(expires_in=3600, delay=0.5)  # a slow provider: everyone arrives while it works
    before = provider.refreshes()
    results = _burst(fleet, key, connection, "burst-user")
    assert len(results) == BURST
    assert {status for status, _ in results} == {200}, results[:3]
    assert len({token for _, token in results}) == 1  # all got the one refresh's result
    assert provider.refreshes() == before + 1
    refreshed = sum(
        g.metric("gateway_vault_refresh_total", connection=connection, outcome="refreshed") for g in fleet
    )
    assert refreshed == 1


def test_a_row_copied_to_another_user_does_not_open(gw: Gateway, provider: Provider) -> None:
    connection = add_connection(gw, provider)
    other_connection = add_connection(gw, provider)
    key = service(gw)
    connect_user(gw, provider, key, connection, "copy-from")
    connect_user(gw, provider, key, connection, "copy-to", "bob")
    connect_user(gw, provider, key, other_connection, "copy-from", "bob")
    victim = gw.admin(key).get(credentials_path(connection, "copy-from")).json()["accessToken"]
    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        with db:
            row = db.execute(
                "SELECT sealed_refresh, sealed_access, access_expires_at FROM vault_entries"
                " WHERE connection_id = ? AND user_id = ?",
                (connection, "copy-from"),
            ).fetchone()
            for target in ((connection, "copy-to"), (other_connection, "copy-from")):
                db.execute(
                    "UPDATE vault_entries SET sealed_refresh = ?, sealed_access = ?, access_expires_at = ?"
                    " WHERE connection_id = ? AND user_id = ?",
                    (*row, *target),
                )
    finally:
        db.close()
    for target_connection, user in ((connection, "copy-to"), (other_connection, "copy-from")):
        response = gw.admin(key).get(credentials_path(target_connection, user))
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "reauthorization_required"
        assert victim not in response.text
    assert "does not open" in gw.log()


@pytest.mark.slow
def test_kill_9_during_a_refresh_loses_no_stored_credential(sqlite_gw: Gateway, provider: Provider) -> None:
    gw = sqlite_gw
    connection = add_connection(gw, provider)
    key = service(gw)
    provider.set(expires_in=30)
    connect_user(gw, provider, key, connection, "k-user")
    sealer = load_sealer(gw.master_key_file)

    def stored_refresh_token() -> str:
        db = sqlite3.connect(gw.directory / "gateway.db")
        try:
            (sealed,) = db.execute(
                "SELECT sealed_refresh FROM vault_entries WHERE connection_id = ? AND user_id = ?",
                (connection, "k-user"),
            ).fetchone()
        finally:
            db.close()
        return sealer.open(sealed, binding(REFRESH_TOKEN, connection, "k-user")).decode()

    before = stored_refresh_token()
    provider.set(delay=2.0)
    arrivals = provider.refreshes()
    reader = threading.Thread(
        target=lambda: _swallow(lambda: gw.admin(key).get(credentials_path(connection, "k-user"))),
        daemon=True,
    )
    reader.start()
    deadline = time.monotonic() + 10
    while provider.refreshes() == arrivals:  # the refresh is at the provider now
        assert time.monotonic() < deadline, "the refresh never reached the provider"
        time.sleep(0.02)
    gw.kill9()
    reader.join(15)
    time.sleep(2.2)  # the provider finishes the orphaned refresh: it rotates the token
    provider.set(delay=0.0)
    db = sqlite3.connect(gw.directory / "gateway.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert stored_refresh_token() == before  # intact: the last committed credential
    gw.start()
    # The provider rotated and revoked the old token, so this credential needs a new login
    # (docs/vault.md: a crash loses at most one rotation); it is not lost or corrupted.
    response = gw.admin(key).get(credentials_path(connection, "k-user"))
    assert response.status_code == 409 and response.json()["error"] == "reauthorization_required"
    connect_user(gw, provider, key, connection, "k-user")
    assert gw.admin(key).get(credentials_path(connection, "k-user")).status_code == 200


def _swallow(call: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # the gateway is killed under it: any error is expected
        call()
