"""Usage counts, last use, expiry and client rate limits in the store (issue 14), the same on
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from gateway.config import StoreURL
from gateway.crypto import generate_access_key, new_client_id
from gateway.models import AccessKey, Client, iso_of, now_iso
from gateway.quota import RateLimit
from gateway.store import Conflict, Store, open_store


@pytest.fixture
def store(store_url: StoreURL) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def new_client(store: Store) -> Client:
    now = now_iso()
    return store.create_client(Client(new_client_id(), "svc", now, now), "test")


def new_key(client: Client, expires_at: str | None = None) -> AccessKey:
    made = generate_access_key(client.client_id, "acct")
    return AccessKey(made.key_id, client.client_id, made.public_key, now_iso(), expires_at=expires_at)


def test_usage_batches_add_up_and_last_use_only_moves_forward(store: Store) -> None:
    client = new_client(store)
    key = store.create_access_key(new_key(client), "test")
    hour = "2026-12-01T09:00:00Z"
    store.write_usage({(client.client_id, hour, "r1"): (3, 1)}, {key.key_id: "2026-12-01T09:05:00.000Z"})
    store.write_usage(
        {(client.client_id, hour, "r1"): (2, 0), (client.client_id, hour, "r2"): (0, 4)},
        {key.key_id: "2026-12-01T09:01:00.000Z", "sec_unknown": "2026-12-01T09:01:00.000Z", "pk_x": "x"},
    )
    rows = store.usage_of(client.client_id, "2026-12-01T00:00:00Z", "2026-12-02T00:00:00Z")
    assert [(r.route, r.allowed, r.refused) for r in rows] == [("r1", 5, 1), ("r2", 0, 4)]
    assert store.usage_of(client.client_id, "2026-12-01T10:00:00Z", "2026-12-02T00:00:00Z") == []
    stored = store.get_access_key(key.key_id)
    assert (
        stored is not None and stored.last_used == "2026-12-01T09:05:00.000Z"
    )  # a late batch never moves it back
    # Usage writes are bookkeeping: they feed no change to the workers' caches.
    before = store.latest_change()
    store.write_usage({(client.client_id, hour, "r1"): (1, 0)}, {})
    assert store.latest_change() == before


def test_expired_keys_are_listed_but_do_not_count(store: Store) -> None:
    client = new_client(store)
    past = iso_of(datetime.now(UTC) - timedelta(seconds=1))
    expired = store.create_access_key(new_key(client, past), "test")
    for _ in range(5):
        store.create_access_key(new_key(client), "test")
    with pytest.raises(Conflict):
        store.create_access_key(new_key(client), "test")
    assert expired.key_id not in {k.key_id for k in store.list_access_keys(client.client_id)}
    listed = store.list_access_keys(client.client_id, with_expired=True)
    assert expired.key_id in {k.key_id for k in listed} and len(listed) == 6


def test_a_client_rate_limit_round_trips(store: Store) -> None:
    client = new_client(store)
    limited = replace(client, rate_limit=RateLimit(100, 60.0, burst=10))
    store.update_client(limited, "test")
    found = store.get_client(client.client_id)
    assert found is not None and found.rate_limit == RateLimit(100, 60.0, burst=10)
    store.update_client(replace(limited, rate_limit=None), "test")
    found = store.get_client(client.client_id)
    assert found is not None and found.rate_limit is None
