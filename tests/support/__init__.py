"""Helpers shared by the suites that start real processes (integration, identity, OAuth): a
recording upstream, the gateway deployment and its admin API, a raw HTTP client, PostgreSQL
schemas and deterministic large bodies. Nothing here reaches beyond 127.0.0.1."""
