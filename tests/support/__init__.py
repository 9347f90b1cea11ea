"""Helpers shared by the integration tests: a recording upstream, a gateway launcher, a raw HTTP
client and deterministic large bodies. Nothing here reaches beyond 127.0.0.1."""
