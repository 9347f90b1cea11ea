"""The identity core: service clients, access keys, roles and access records, and the caches
that keep them off the hot path."""
