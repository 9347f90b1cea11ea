"""The bulk seeder of the keys_* scenarios writes rows the gateway's store reads back as valid
clients and access keys: the real keys verify, the filler clients are there."""

from __future__ import annotations

from benchmarks.seed import bulk_seed
from gateway.config import StoreURL
from gateway.crypto import parse_access_key, same_public_key
from gateway.store import open_store


def test_bulk_seed_writes_keys_the_store_verifies(store_url: StoreURL) -> None:
    open_store(store_url).close()  # migrated, as `gateway init` leaves it; then nobody connected
    where = {"sqlite": store_url.path} if store_url.scheme == "sqlite" else {"postgresql": store_url.url}
    keys = bulk_seed(
        where,
        clients=50,
        hot_clients=3,
        hot_keys=12,
        account_id="bench",
        scopes=["documents.read"],
        audiences=["http://127.0.0.1:1"],
    )

    store = open_store(store_url)
    try:
        assert len(keys) == len(set(keys)) == 12
        hot = set()
        for text in keys:
            parsed = parse_access_key(text)
            assert parsed.account_id == "bench"
            key = store.get_access_key(parsed.key_id)
            assert key is not None and key.active and key.client_id == parsed.client_id
            assert same_public_key(parsed.public_key(), key.public_key)
            client = store.get_client(parsed.client_id)
            assert client is not None and not client.disabled
            assert client.scopes == ("documents.read",)
            hot.add(client.client_id)
        assert len(hot) == 3
        assert len(store.list_clients(limit=1000)) == 50
    finally:
        store.close()
