"""The vault's rows on SQLite and PostgreSQL: the per-credential session lock, writes that never
resurrect a deleted row, login states used once, and compare-and-swap re-sealing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from gateway.config import StoreURL
from gateway.models import now_iso
from gateway.store import Missing, Store, open_store
from gateway.vault_models import LoginState, VaultEntry, connection_from


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def _entry(connection: str, user: str, refresh: str = "sealed-1") -> VaultEntry:
    now = now_iso()
    return VaultEntry(connection, user, refresh, None, "Bearer", None, "active", 0, now, now)


def _connection(store: Store, connection_id: str = "cal") -> None:
    made, _ = connection_from(
        {
            "connectionId": connection_id,
            "authorizationUrl": "https://p.example/a",
            "tokenUrl": "https://p.example/t",
            "clientId": "gw",
            "tokenEndpointAuthMethod": "none",
        },
        None,
    )
    store.put_connection(made, "test", create_only=True)


def test_one_session_per_credential_at_a_time(store: Store) -> None:
    """A second session on the same credential waits for the first to commit, and then reads
    what it wrote (the refresh a waiter must not repeat)."""
    with store.vault_session("cal", "u1") as session:
        session.save(_entry("cal", "u1"), "test", "credentials.put", {})
    seen: list[str] = []
    held = threading.Event()

    def first() -> None:
        with store.vault_session("cal", "u1") as session:
            held.set()
            time.sleep(0.4)  # the provider is slow
            session.save(_entry("cal", "u1", "sealed-2"), "test", "credentials.refresh", {})

    def second() -> None:
        held.wait(5)
        with store.vault_session("cal", "u1") as session:
            assert session.entry is not None
            seen.append(session.entry.sealed_refresh)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert seen == ["sealed-2"] and time.monotonic() - started >= 0.4
    entry = store.get_vault_entry("cal", "u1")
    assert entry is not None and entry.version == 2


@pytest.fixture
def pg_store(postgres_url: str) -> Iterator[Store]:
    s = open_store(StoreURL("postgresql", postgres_url))
    yield s
    s.close()


@pytest.mark.postgres
def test_postgresql_sessions_hold_only_their_own_credential(pg_store: Store) -> None:
    """On PostgreSQL a session waiting on a provider blocks neither other credentials nor the
    store's ordinary writes (SQLite has one write lock for everything, by design)."""
    with pg_store.vault_session("cal", "slow"):
        started = time.monotonic()
        with pg_store.vault_session("cal", "other") as other:
            other.save(_entry("cal", "other"), "test", "credentials.put", {})
        _connection(pg_store, "while-held")
        assert time.monotonic() - started < 2


@pytest.mark.postgres
def test_a_session_never_resurrects_a_row_deleted_meanwhile(pg_store: Store) -> None:
    """A connection's deletion does not wait for its credentials' locks (PostgreSQL; on SQLite
    it cannot interleave): the session's write then finds the row gone and writes nothing."""
    _connection(pg_store)
    with pg_store.vault_session("cal", "u1") as session:
        session.save(_entry("cal", "u1"), "test", "credentials.put", {})
    session_read = threading.Event()
    deleted = threading.Event()
    outcome: list[str] = []

    def refresher() -> None:
        try:
            with pg_store.vault_session("cal", "u1") as session:
                session_read.set()
                deleted.wait(5)
                session.save(_entry("cal", "u1", "sealed-2"), "test", "credentials.refresh", {})
            outcome.append("saved")
        except Missing:
            outcome.append("missing")

    thread = threading.Thread(target=refresher)
    thread.start()
    session_read.wait(5)
    assert pg_store.delete_connection("cal", "test") == 1
    deleted.set()
    thread.join(10)
    assert outcome == ["missing"] and pg_store.get_vault_entry("cal", "u1") is None


def test_login_states_are_taken_once(store: Store) -> None:
    state = LoginState("h" * 64, "cal", "u1", "sealed", None, int(time.time()) + 600, "test")
    store.add_login_state(state, int(time.time()))
    results: list[LoginState | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(store.take_login_state("h" * 64))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert [r for r in results if r is not None] == [state]


def test_resealing_is_compare_and_swap(store: Store) -> None:
    with store.vault_session("cal", "u1") as session:
        session.save(_entry("cal", "u1", "old"), "test", "credentials.put", {})
    assert not store.replace_sealed("vault_entries", ("cal", "u1"), "sealed_refresh", "not-the-value", "new")
    assert store.replace_sealed("vault_entries", ("cal", "u1"), "sealed_refresh", "old", "new")
    entry = store.get_vault_entry("cal", "u1")
    assert entry is not None and entry.sealed_refresh == "new"
    with pytest.raises(ValueError):
        store.replace_sealed("clients", ("x",), "name", "a", "b")
