"""Fixtures shared by every suite: the two store backends."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import StoreURL

PG_BASE = os.environ.get("GATEWAY_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reason() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_BASE, connect_timeout=3):
            return None
    except Exception as exc:
        return f"no PostgreSQL at {PG_BASE} ({type(exc).__name__})"


_PG_UNAVAILABLE = _postgres_reason()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if _PG_UNAVAILABLE:
        if os.environ.get("GATEWAY_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required here: {_PG_UNAVAILABLE}")
        pytest.skip(_PG_UNAVAILABLE)
    import psycopg

    schema = "t_" + secrets.token_hex(6)
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> StoreURL:
    if request.param == "sqlite":
        return StoreURL("sqlite", f"sqlite:///{tmp_path}/gateway.db", tmp_path / "gateway.db")
    url: str = request.getfixturevalue("postgres_url")
    return StoreURL("postgresql", url)
