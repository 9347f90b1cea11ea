"""Trusted identities in the store, the same on SQLite and PostgreSQL: create, replace only at
the expected revision, list by tenant and page, delete; every write in the audit log and the
change feed (an `identity` change, and a `client` change for each client mapped before and after)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.config import StoreURL
from gateway.crypto import new_client_id
from gateway.identity.trusted import identity_from
from gateway.models import Client, now_iso
from gateway.store import Conflict, Missing, Store, open_store


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def new_client(store: Store, tenant: str | None = None) -> str:
    now = now_iso()
    client = Client(new_client_id(), "svc", now, now, tenant=tenant)
    store.create_client(client, "test")
    return client.client_id


def body(client_id: str, sub: str = "repo:acme/deploy:ref:refs/heads/main", **more: object) -> dict[str, object]:
    return {"preset": "github-actions", "audience": "aud", "clientId": client_id, "conditions": {"sub": sub}, **more}


def test_lifecycle_audit_and_change_feed(store: Store) -> None:
    first, second = new_client(store), new_client(store)
    seq = store.latest_change()
    entry = store.put_trusted_identity(identity_from(body(first, identityId="deploy")), "admin")
    assert store.get_trusted_identity("deploy") == entry
    with pytest.raises(Conflict):
        store.put_trusted_identity(identity_from(body(first, identityId="deploy")), "admin")

    moved = identity_from(body(second, sub="repo:acme/deploy:environment:prod"), "deploy", previous=entry)
    assert moved.revision == 2 and moved.created_at == entry.created_at
    store.put_trusted_identity(moved, "admin", expected_revision=1)
    with pytest.raises(Conflict):  # a second writer that read revision 1 loses
        store.put_trusted_identity(moved, "admin", expected_revision=1)
    stored = store.get_trusted_identity("deploy")
    assert stored is not None and stored.client_id == second and stored.revision == 2
    assert stored.conditions == (("sub", "repo:acme/deploy:environment:prod"),)

    store.delete_trusted_identity("deploy", "admin")
    assert store.get_trusted_identity("deploy") is None
    with pytest.raises(Missing):
        store.delete_trusted_identity("deploy", "admin")

    changes = [(c.kind, c.ref) for c in store.changes_since(seq)]
    assert changes.count(("identity", "deploy")) == 3
    assert ("client", first) in changes and ("client", second) in changes
    actions = [(a.action, a.target) for a in store.list_audit(limit=10)]
    for action in ("identity.create", "identity.update", "identity.delete"):
        assert (action, "/gateway/identities/deploy") in actions


def test_list_pages_and_tenants(store: Store) -> None:
    plain, tenanted = new_client(store), new_client(store, tenant="t1")
    for i in range(3):
        store.put_trusted_identity(identity_from(body(plain, identityId=f"p{i}")), "admin")
    store.put_trusted_identity(identity_from(body(tenanted, identityId="t0")), "admin")
    assert [e.identity_id for e in store.list_trusted_identities()] == ["p0", "p1", "p2", "t0"]
    assert [e.identity_id for e in store.list_trusted_identities("p0", 2)] == ["p1", "p2"]
    assert [e.identity_id for e in store.list_trusted_identities(tenant="t1")] == ["t0"]
    assert store.list_trusted_identities(tenant="nobody") == []
