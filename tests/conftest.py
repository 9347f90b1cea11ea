"""Fixtures shared by every suite: the two store backends, and marks for finding requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import StoreURL
from tests.support.postgres import Schemas
from tests.support.processes import new_mark


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    schemas = Schemas("t_")
    try:
        yield schemas.new()
    finally:
        schemas.drop_all()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> StoreURL:
    if request.param == "sqlite":
        return StoreURL("sqlite", f"sqlite:///{tmp_path}/gateway.db", tmp_path / "gateway.db")
    url: str = request.getfixturevalue("postgres_url")
    return StoreURL("postgresql", url)


@pytest.fixture
def mark() -> str:
    """A value for X-Test-Mark, to find this test's requests at the upstream."""
    return new_mark()
