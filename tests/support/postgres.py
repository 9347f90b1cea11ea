"""The PostgreSQL server the store tests use (GATEWAY_TEST_POSTGRES, by default the machine's on
127.0.0.1:5432), and fresh schemas in it so that every deployment starts from an empty store."""

from __future__ import annotations

import os
import secrets

import pytest

PG_BASE = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _unavailable() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3):
            return None
    except Exception as exc:
        return f"no PostgreSQL at {PG_BASE} ({type(exc).__name__})"


PG_UNAVAILABLE = _unavailable()  # asked once per test run, not once per test


def require_postgres() -> None:
    """Skip the test without a PostgreSQL server; fail it instead where one is required (CI sets
    GATEWAY_TEST_REQUIRE_POSTGRES, so a broken server cannot pass as a skip)."""
    if PG_UNAVAILABLE:
        if os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {PG_UNAVAILABLE}")
        pytest.skip(PG_UNAVAILABLE)


class Schemas:
    """Fresh PostgreSQL schemas (as store URLs whose search_path is the schema), dropped by
    `drop_all`. `prefix` tells a leftover schema's suite."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.names: list[str] = []

    def new(self) -> str:
        require_postgres()
        import psycopg

        schema = self.prefix + secrets.token_hex(6)
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        self.names.append(schema)
        return f"{PG_BASE}?options=-csearch_path%3D{schema}"

    def drop_all(self) -> None:
        if not self.names:
            return
        import psycopg

        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            for schema in self.names:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self.names.clear()
