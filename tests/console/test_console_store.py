"""The console's store records (sessions, searches, counts, audit filters) on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from gateway.config import StoreURL
from gateway.crypto import generate_access_key, new_client_id
from gateway.models import AccessKey, Client, now_iso
from gateway.store import Store, open_store


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def new_client(store: Store, name: str, tenant: str | None = None) -> Client:
    now = now_iso()
    client = Client(new_client_id(), name, now, now, tenant=tenant)
    store.create_client(client, "test")
    made = generate_access_key(client.client_id, "acct")
    store.create_access_key(AccessKey(made.key_id, client.client_id, made.public_key, now), "test")
    return client


def test_sessions_are_kept_by_hash_expire_and_end(store: Store) -> None:
    now = int(time.time())
    store.create_console_session("h1", "ci_a", "acc_1", now + 60, now)
    store.create_console_session("h2", "ci_b", "sec_2", now + 1, now)
    found = store.get_console_session("h1", now)
    assert found is not None and (found.client_id, found.credential_id) == ("ci_a", "acc_1")
    assert store.get_console_session("h2", now + 5) is None  # expired
    assert store.get_console_session("nope", now) is None
    store.delete_console_session("h1")
    assert store.get_console_session("h1", now) is None
    # A sign-in prunes the expired rows of others.
    store.create_console_session("h3", "ci_c", "acc_3", now + 60, now + 5)
    with store.backend.read() as cur:
        hashes = {r[0] for r in cur.execute("SELECT id_hash FROM console_sessions").fetchall()}
    assert hashes == {"h3"}
    actions = [e.action for e in store.search_audit(None, 10)]
    assert actions.count("console.sign_in") == 3 and actions.count("console.sign_out") == 1


def test_client_search_is_literal_case_blind_and_fenced_by_tenant(store: Store) -> None:
    a = new_client(store, "Billing_Worker", "acme")
    b = new_client(store, "billing%batch", "other")
    new_client(store, "reports", "acme")
    assert [c.client_id for c in store.list_clients(None, "", 10, contains="BILLING")] == sorted(
        [a.client_id, b.client_id]
    )
    assert [c.client_id for c in store.list_clients("acme", "", 10, contains="billing")] == [a.client_id]
    # LIKE's wildcards are taken literally.
    assert [c.client_id for c in store.list_clients(None, "", 10, contains="g%b")] == [b.client_id]
    assert [c.client_id for c in store.list_clients(None, "", 10, contains="g_w")] == [a.client_id]
    assert store.list_clients(None, "", 10, contains=a.client_id[3:9])[0].client_id == a.client_id
    assert store.count_clients_and_keys("acme") == (2, 2)
    assert store.count_clients_and_keys(None) == (3, 3)


def test_audit_filters(store: Store) -> None:
    a = new_client(store, "one")
    new_client(store, "two")
    by_action = store.search_audit(None, 50, action="client.create")
    assert len(by_action) == 2
    family = store.search_audit(None, 50, action="client.")
    assert {e.action for e in family} == {"client.create"}
    assert len(store.search_audit(None, 50, action="access_key.")) == 2
    targets = [e.target for e in store.search_audit(None, 50, target=a.client_id.upper())]
    assert len(targets) == 2 and all(a.client_id in t for t in targets)  # its create and its key
    assert store.search_audit(None, 50, actor="nobody") == []
    newest = store.search_audit(None, 1)
    assert store.search_audit(newest[0].id, 50) == store.search_audit(None, 50)[1:]
