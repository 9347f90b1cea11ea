"""The proxy's refusal paths, in-process. The upstream points at a closed port: had any of these
requests been forwarded, the answer would be 502, not the refusal asserted."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from gateway.admin import public_own_app
from gateway.proxy import ProxyApp
from tests.support.inprocess import initialised_runtime


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(
        f"""
upstreams:
  up: {{url: "http://127.0.0.1:{closed_port()}", connect_timeout: 1s}}
routes:
  - {{id: public, match: GET /public, upstream: up, auth: none}}
  - {{id: docs, match: "GET /docs/{{id}}", upstream: up, permission: documents:read, resource: "/docs/{{id}}"}}
"""
    )
    (tmp_path / "c.yaml").write_text(
        """
public_url: http://127.0.0.1:8080
listen: 127.0.0.1:8080
admin: {listen: 127.0.0.1:8081, public_url: http://127.0.0.1:8081}
store: sqlite:data/gateway.db
account_id: test
master_key_file: master.key
policies: [policies/]
limits: {max_headers: 20, max_header_bytes: 2KiB, max_body_bytes: 100}
reload: {interval: 0}
"""
    )
    return tmp_path / "c.yaml"


Call = Callable[..., Awaitable[httpx.Response]]


def run(config_path: Path, body: Callable[[Call], Awaitable[None]]) -> None:
    async def main() -> None:
        runtime = await initialised_runtime(config_path)
        await runtime.start()
        app = ProxyApp(runtime, public_own_app(runtime))
        try:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://gw"
            ) as client:
                await body(client.request)
        finally:
            await runtime.stop()

    asyncio.run(main())


def error_of(response: httpx.Response) -> str:
    data = json.loads(response.content)
    assert set(data) == {"error", "error_description", "request_id"}
    assert response.headers["x-request-id"] == data["request_id"]
    return str(data["error"])


def test_refusals_never_reach_the_upstream(config_path: Path) -> None:
    async def body(request: Call) -> None:
        r = await request("GET", "/nowhere")
        assert (r.status_code, error_of(r)) == (404, "not_found")
        r = await request("GET", "/docs/%2e%2e")
        assert (r.status_code, error_of(r)) == (400, "invalid_request")
        r = await request("GET", "/docs/1")
        assert (r.status_code, error_of(r)) == (401, "invalid_token")
        assert r.headers["www-authenticate"] == 'Bearer realm="gateway"'
        r = await request("GET", "/docs/1", headers={"authorization": "Bearer sc_unknown"})
        assert (r.status_code, error_of(r)) == (401, "invalid_token")
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
        r = await request(
            "GET", "/docs/1", headers=[("authorization", "Bearer a"), ("authorization", "Bearer b")]
        )
        assert (r.status_code, error_of(r)) == (400, "invalid_request")
        r = await request("GET", "/public", headers={f"x-h{i}": "v" for i in range(30)})
        assert (r.status_code, error_of(r)) == (431, "request_too_large")
        r = await request("POST", "/public", content=b"x" * 101)
        assert r.status_code == 404  # POST has no route: matched before the body is looked at
        r = await request("GET", "/public", content=b"x" * 101)
        assert (r.status_code, error_of(r)) == (413, "request_too_large")

    run(config_path, body)


def test_public_route_to_a_dead_upstream_is_502(config_path: Path) -> None:
    async def body(request: Call) -> None:
        r = await request("GET", "/public", headers={"x-request-id": "trace-1"})
        assert (r.status_code, error_of(r)) == (502, "bad_gateway")
        assert r.headers["x-request-id"] == "trace-1"

    run(config_path, body)


def test_own_endpoints_answer_in_the_contract_shape(config_path: Path) -> None:
    async def body(request: Call) -> None:
        r = await request("POST", "/oauth/token")
        assert (r.status_code, error_of(r)) == (400, "invalid_request")

    run(config_path, body)
