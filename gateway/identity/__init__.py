"""The identity core: service clients, access keys, roles and access records, the caches that
keep them off the hot path, signing keys and the gateway tokens signed with them.

Imports the store, `gateway.models` and the foundation; never the pipeline, the runtime or a
front door (they import this)."""
