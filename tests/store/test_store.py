"""The store's behaviour, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gateway.config import StoreURL
from gateway.crypto import generate_access_key, new_client_id
from gateway.models import AccessKey, Client, Permission, Record, Role, Statement, now_iso
from gateway.store import Conflict, Missing, Store, StoreError, current_version, migrate, open_store
from gateway.store.backend import open_backend
from gateway.store.migrations import MIGRATIONS

ALL_VERSIONS = [version for version, _ in MIGRATIONS]


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def client(**kw: object) -> Client:
    now = now_iso()
    fields: dict[str, object] = {
        "client_id": new_client_id(),
        "name": "svc",
        "created_at": now,
        "updated_at": now,
    }
    fields.update(kw)
    return Client(**fields)  # type: ignore[arg-type]


def key_for(c: Client) -> AccessKey:
    new = generate_access_key(c.client_id, "acct")
    return AccessKey(new.key_id, c.client_id, new.public_key, now_iso())


def test_migrations_are_idempotent(store_url: StoreURL) -> None:
    backend = open_backend(store_url)
    try:
        assert current_version(backend) == 0
        assert migrate(backend) == ALL_VERSIONS
        assert migrate(backend) == []
        assert current_version(backend) == ALL_VERSIONS[-1]
    finally:
        backend.close()


def test_concurrent_migrations_apply_once(store_url: StoreURL) -> None:
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        backend = open_backend(store_url)
        try:
            results.append(migrate(backend))
        except BaseException as exc:
            errors.append(exc)
        finally:
            backend.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert sorted(results) == [[], [], [], ALL_VERSIONS]


def test_client_round_trip_update_and_delete(store: Store) -> None:
    c = store.create_client(
        client(tenant="t1", scopes=("a", "b"), audiences=("x",), token_lifetime=600), "admin"
    )
    assert store.get_client(c.client_id) == c
    changed = replace(
        c,
        name="renamed",
        description="d",
        scopes=("a",),
        audiences=(),
        token_lifetime=None,
        disabled=True,
        updated_at=now_iso(),
    )
    store.update_client(changed, "admin")
    got = store.get_client(c.client_id)
    assert got is not None and (got.name, got.disabled, got.scopes, got.tenant) == (
        "renamed",
        True,
        ("a",),
        "t1",
    )
    store.delete_client(c.client_id, "admin")
    assert store.get_client(c.client_id) is None
    with pytest.raises(Missing):
        store.delete_client(c.client_id, "admin")


def test_list_clients_pages_and_filters_by_tenant(store: Store) -> None:
    made = [store.create_client(client(tenant="t1" if i % 2 else None), "a") for i in range(5)]
    page1 = store.list_clients(limit=3)
    page2 = store.list_clients(after=page1[-1].client_id, limit=3)
    assert [c.client_id for c in page1 + page2] == sorted(c.client_id for c in made)
    assert {c.client_id for c in store.list_clients(tenant="t1")} == {
        c.client_id for c in made if c.tenant == "t1"
    }


def test_at_most_five_active_keys_and_revoked_ones_do_not_count(store: Store) -> None:
    c = store.create_client(client(), "a")
    keys = [store.create_access_key(key_for(c), "a") for _ in range(5)]
    with pytest.raises(Conflict, match="at most 5 active access keys"):
        store.create_access_key(key_for(c), "a")
    store.revoke_access_key(c.client_id, keys[0].key_id, "a")
    store.create_access_key(key_for(c), "a")
    assert len(store.list_access_keys(c.client_id)) == 5
    revoked = store.get_access_key(keys[0].key_id)
    assert revoked is not None and not revoked.active and revoked.public_key == keys[0].public_key
    with pytest.raises(Missing):
        store.revoke_access_key(c.client_id, keys[0].key_id, "a")
    other = store.create_client(client(), "a")
    with pytest.raises(Missing):  # a key is revoked only through its own client
        store.revoke_access_key(other.client_id, keys[1].key_id, "a")


def test_deleting_a_client_removes_its_keys(store: Store) -> None:
    c = store.create_client(client(), "a")
    k = store.create_access_key(key_for(c), "a")
    store.delete_client(c.client_id, "a")
    assert store.get_access_key(k.key_id) is None


def test_roles_and_records(store: Store) -> None:
    now = now_iso()
    role = Role("reader", "Reader", (Permission("documents:read"), Permission("x:*", allow=False)), now, now)
    store.put_role(role, "a", create_only=True)
    with pytest.raises(Conflict):
        store.put_role(role, "a", create_only=True)
    assert store.get_role("reader") == role
    assert set(store.get_roles(["reader", "nope"])) == {"reader"}
    rec = Record(
        "rec1", "r", ("sc_a", "sc_b"), (Statement(("reader",), ("/users/1",)),), now, now, created_by="a"
    )
    store.put_record(rec, "a")
    assert store.get_record("rec1") == rec
    assert [r.record_id for r in store.records_for_user("sc_b")] == ["rec1"]
    assert store.records_for_user("sc_c") == []
    store.put_record(Record("rec1", "r2", ("sc_c",), (), now_iso(), now_iso()), "a")
    updated = store.get_record("rec1")
    assert updated is not None and updated.users == ("sc_c",) and updated.created_at == rec.created_at
    assert store.records_for_user("sc_b") == []
    store.delete_record("rec1", "a")
    assert store.get_record("rec1") is None
    store.delete_role("reader", "a")
    with pytest.raises(Missing):
        store.delete_role("reader", "a")


def test_every_write_feeds_changes_and_audit(store: Store) -> None:
    start = store.latest_change()
    c = store.create_client(client(), "admin-1")
    k = store.create_access_key(key_for(c), "admin-1")
    store.revoke_access_key(c.client_id, k.key_id, "admin-1")
    changes = store.changes_since(start)
    assert [(ch.kind, ch.ref) for ch in changes] == [
        ("client", c.client_id),
        ("key", k.key_id),
        ("client", c.client_id),
        ("key", k.key_id),
        ("client", c.client_id),
    ]
    assert [ch.seq for ch in changes] == sorted(ch.seq for ch in changes)
    audit = store.list_audit(limit=3)
    assert [a.action for a in audit] == ["access_key.revoke", "access_key.create", "client.create"]
    assert all(a.actor == "admin-1" for a in audit)
    assert "public_key" not in str(audit) and k.public_key.hex() not in str(audit)


def test_a_failed_write_changes_nothing(store: Store) -> None:
    c = store.create_client(client(), "a")
    start = store.latest_change()
    with pytest.raises(StoreError):
        store.create_client(c, "a")  # duplicate id
    assert store.latest_change() == start
    assert len(store.list_audit()) == 1
