"""The decision endpoint in-process: its config, and the refusals that are hard to cause from
outside (a store outage, a bug of ours), which must still be a 403 and never reach anyone."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.config import load_config
from gateway.decisions import DecisionApp
from gateway.errors import ConfigError
from gateway.pipeline.authn import Verified
from gateway.runtime import Runtime
from gateway.store import StoreError
from tests.support.inprocess import initialised_runtime

CONFIG = """
public_url: http://127.0.0.1:8080
listen: 127.0.0.1:8080
admin: {listen: 127.0.0.1:8081, public_url: http://127.0.0.1:8081}
store: sqlite:data/gateway.db
account_id: test
master_key_file: master.key
policies: [policies/]
reload: {interval: 0}
"""

POLICY = """
upstreams:
  up: {url: "http://127.0.0.1:9"}
routes:
  - {id: public, match: GET /public, upstream: up, auth: none}
  - {id: docs, match: "GET /docs/{id}", upstream: up, permission: documents:read, resource: "/docs/{id}"}
"""


def write(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "p.yaml").write_text(POLICY)
    (tmp_path / "c.yaml").write_text(CONFIG + extra)
    return tmp_path / "c.yaml"


Get = Callable[..., Awaitable[httpx.Response]]


def run(config: Path, body: Callable[[Runtime, Get], Awaitable[None]]) -> None:
    async def main() -> None:
        runtime = await initialised_runtime(config)
        await runtime.start()
        try:
            transport = httpx.ASGITransport(app=DecisionApp(runtime))
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                await body(runtime, client.get)
        finally:
            await runtime.stop()

    asyncio.run(main())


def test_cache_headers_follow_the_config(tmp_path: Path) -> None:
    async def default(runtime: Runtime, get: Get) -> None:
        r = await get("/v1/decisions/public")
        assert r.status_code == 200
        assert [(n, v) for n, v in r.headers.items() if n in ("cache-control", "x-accel-expires")] == [
            ("x-accel-expires", "1"),  # first: older nginx lets the first of the two win
            ("cache-control", "private, max-age=1"),
        ]

    run(write(tmp_path), default)

    async def off(runtime: Runtime, get: Get) -> None:
        r = await get("/v1/decisions/public")
        assert r.status_code == 200
        assert (r.headers["cache-control"], r.headers["x-accel-expires"]) == ("no-store", "0")

    run(write(tmp_path, "decisions: {cache_max_age: 0s}\n"), off)


class Unreachable:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def verify(self, credential: str | None, accepted: frozenset[str]) -> Verified:
        raise self.error


@pytest.mark.parametrize(
    ("error", "code"), [(StoreError("down"), "temporarily_unavailable"), (KeyError("bug"), "server_error")]
)
def test_a_store_outage_or_a_bug_is_a_403_that_says_so(tmp_path: Path, error: Exception, code: str) -> None:
    async def body(runtime: Runtime, get: Get) -> None:
        runtime.authn = Unreachable(error)  # type: ignore[assignment]
        r = await get("/v1/decisions/docs/1", headers={"authorization": "Bearer anything"})
        assert r.status_code == 403
        assert json.loads(r.content)["error"] == code
        assert r.headers["cache-control"] == "no-store" and "x-accel-expires" not in r.headers

    run(write(tmp_path), body)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("decisions: {cache_max_age: 2s}\n", "decisions.cache_max_age: expected 0s (no caching) or 1s"),
        ("decisions: {cache_max_age: 500ms}\n", "decisions.cache_max_age: expected 0s"),
        ("decisions: {listen: nowhere}\n", "decisions.listen: expected HOST:PORT"),
        ("decisions: {listne: 127.0.0.1:1}\n", "decisions.listne: unknown key"),
    ],
)
def test_bad_decision_settings_name_the_key(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(write(tmp_path, extra), environ={})


def test_the_listener_can_come_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path), environ={"GATEWAY_DECISIONS_LISTEN": "127.0.0.1:8082"})
    assert str(config.decisions.listen) == "127.0.0.1:8082"
    assert load_config(write(tmp_path), environ={}).decisions.listen is None
