"""Persistence behind one interface, chosen by the `store:` URL: `sqlite:` (embedded default)
or `postgresql:` (several replicas).

Imports `gateway.models` and the foundation (config, errors) only; the identity services, the
pipeline and the front doors import the store, never the other way round."""

from gateway.config import StoreURL
from gateway.store.backend import StoreError, open_backend
from gateway.store.base import MAX_ACTIVE_KEYS, Conflict, Missing
from gateway.store.migrations import current_version, migrate
from gateway.store.store import Store


def open_store(url: StoreURL, run_migrations: bool = True) -> Store:
    backend = open_backend(url)
    if run_migrations:
        migrate(backend)
    return Store(backend)


__all__ = [
    "MAX_ACTIVE_KEYS",
    "Conflict",
    "Missing",
    "Store",
    "StoreError",
    "current_version",
    "migrate",
    "open_store",
]
