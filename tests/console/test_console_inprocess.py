"""The console in-process over a real SQLite store, for what a browser test would only repeat:
the cookie under https and a path, bad forms, expired sessions, and the settings' bounds."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.admin import admin_app
from gateway.config import load_config
from gateway.console import console_routes
from gateway.errors import ConfigError
from gateway.identity import service
from gateway.runtime import Runtime
from tests.support.inprocess import initialised_runtime

CONFIG = """\
public_url: https://gateway.example.test
listen: 127.0.0.1:8080
admin: {{listen: 127.0.0.1:8081, public_url: "https://admin.example.test/ops"}}
store: sqlite:data/gateway.db
account_id: test
master_key_file: master.key
policies: [policies/]
reload: {{interval: 0}}
{extra}
"""
BASE = "https://admin.example.test"


def write(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "policies").mkdir(exist_ok=True)
    (tmp_path / "policies" / "routes.yaml").write_text("upstreams: {}\nroutes: []\n")
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(extra=extra))
    return path


Body = Callable[[httpx.AsyncClient, Runtime, str], Awaitable[None]]


def run(config_path: Path, body: Body) -> None:
    """`body(client, runtime, admin key)` against the console app, with a fresh admin client."""

    async def main() -> None:
        runtime = await initialised_runtime(config_path)
        await runtime.start()
        store = runtime.identity.store
        client, key, access_key, _, record = service.initial_objects("console admin", "test")
        await asyncio.to_thread(store.create_client, client, "test")
        await asyncio.to_thread(store.create_access_key, key, "test")
        record = type(record)(
            "console-admin",
            "console admin",
            (client.client_id,),
            record.statements[:1],
            record.created_at,
            record.updated_at,
        )
        await asyncio.to_thread(store.put_record, record, "test")
        app = admin_app(runtime, console_routes(runtime))  # as `gateway serve` builds it
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:
                await body(http, runtime, access_key)
        finally:
            await runtime.stop()

    asyncio.run(main())


async def sign_in(http: httpx.AsyncClient, key: str) -> httpx.Response:
    form = await http.get("/ops/console/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    return await http.post("/ops/console/sign-in", data={"csrf": csrf.group(1), "credential": key})


def test_the_cookie_is_secure_under_https_and_scoped_to_the_console(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, runtime: Runtime, key: str) -> None:
        signed = await sign_in(http, key)
        assert signed.status_code == 303 and signed.headers["location"] == "/ops/console/"
        cookie = signed.headers["set-cookie"]
        for flag in ("Secure", "HttpOnly", "SameSite=strict", "Path=/ops/console/"):
            assert flag in cookie, cookie
        assert (await http.get("/ops/console/clients")).status_code == 200
        assets = await http.get("/ops/console/static/console.css")
        assert assets.status_code == 200 and "public, max-age" in assets.headers["cache-control"]
        assert (await http.get("/console/")).status_code == 404  # under the path only

    run(write(tmp_path), body)


def test_bad_forms_are_4xx_pages(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, runtime: Runtime, key: str) -> None:
        await sign_in(http, key)
        page = await http.get("/ops/console/clients")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        token = csrf.group(1)
        cases = [
            ({"content": b'{"name": "x"}', "headers": {"content-type": "application/json"}}, 400),
            (
                {
                    "content": b"csrf=" + token.encode() + b"&name=\xff",
                    "headers": {"content-type": "application/x-www-form-urlencoded"},
                },
                400,
            ),
            ({"data": {"csrf": token, "name": "x" * 300_000}}, 413),
            ({"data": {"csrf": token, "name": ""}}, 400),
            ({"data": {"csrf": token, "name": "ok", "token_lifetime": "soon"}}, 400),
            ({"data": {"csrf": token, "name": "ok", "tenant": "bad tenant!"}}, 400),
        ]
        for kwargs, status in cases:
            answer = await http.post("/ops/console/clients", **kwargs)  # type: ignore[arg-type]
            assert answer.status_code == status, (kwargs, answer.text[:300])
            assert answer.headers["content-type"].startswith("text/html")
            assert "content-security-policy" in answer.headers
        delete = await http.post(
            "/ops/console/clients/sc_nobody/delete", data={"csrf": token, "confirm": "sc_nobody"}
        )
        assert delete.status_code == 404
        unknown_kind = await http.post("/ops/console/clients/sc_nobody/frobs", data={"csrf": token})
        assert unknown_kind.status_code == 404
        explain = await http.get("/ops/console/policies", params={"path": "/a/../b", "method": "GET"})
        assert explain.status_code == 200 and "deny" in explain.text.lower()

    run(write(tmp_path), body)


def test_an_expired_session_opens_nothing(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, runtime: Runtime, key: str) -> None:
        await sign_in(http, key)
        assert (await http.get("/ops/console/")).status_code == 200
        with runtime.identity.store.backend.write() as cur:
            cur.execute("UPDATE console_sessions SET expires_at = ?", (int(time.time()),))
        answer = await http.get("/ops/console/")
        assert answer.status_code == 303 and answer.headers["location"] == "/ops/console/sign-in"

    run(write(tmp_path, "console: {session_lifetime: 1m}"), body)


def test_session_lifetime_is_at_most_eight_hours(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"console\.session_lifetime: expected a duration from 60s to 28800s"
    ):
        load_config(write(tmp_path, "console: {session_lifetime: 9h}"), environ={})
    assert load_config(write(tmp_path, "console: {enabled: false}"), environ={}).console.enabled is False


def test_failed_sign_ins_are_throttled_per_address(tmp_path: Path) -> None:
    async def body(http: httpx.AsyncClient, runtime: Runtime, key: str) -> None:
        wrong = key[:-6] + "AAAAAA"
        for _ in range(3):
            answer = await sign_in(http, wrong)
            assert answer.status_code == 401 and "not valid" in answer.text
        # Over the limit: refused before the credential is even checked, the right one too.
        answer = await sign_in(http, key)
        assert answer.status_code == 429 and answer.headers["retry-after"].isdigit()
        assert "gateway_console=" not in answer.headers.get("set-cookie", "")

    run(write(tmp_path, "throttle: {failures_per_address: 3}"), body)
