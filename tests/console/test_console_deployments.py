"""The console in other deployments: two replicas sharing a PostgreSQL store (a session made on
one holds on the other, and a sign-out on one ends it on both), and an admin listener whose
public URL has a path (the console, its assets and its cookie move under it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import POLICY
from tests.support.harness import Gateway, serving, write_policy
from tests.support.postgres import Schemas, require_postgres
from tests.support.processes import Upstream


@pytest.fixture
def replicas(tmp_path: Path, upstream: Upstream) -> Iterator[tuple[Gateway, Gateway]]:
    require_postgres()
    schemas = Schemas("t_console_")
    try:
        policy = write_policy(tmp_path / "policy", POLICY.format(upstream=upstream.url))
        first = Gateway(tmp_path / "a", schemas.new(), [policy], account="console")
        first.init()
        second = Gateway(
            tmp_path / "b",
            first.store,
            [policy],
            account="console",
            public_url=first.public_url,
            master_key_file=first.master_key_file,
        )
        with serving(first), serving(second):
            yield first, second
    finally:
        schemas.drop_all()


@pytest.mark.postgres
def test_a_session_holds_across_replicas_and_ends_on_both(
    replicas: tuple[Gateway, Gateway], context: Any
) -> None:
    first, second = replicas
    assert first.admin_key is not None
    page = context.new_page()
    page.goto(f"{first.admin_url}/console/")
    page.fill("#credential", first.admin_key)
    page.click("#sign-in")
    page.wait_for_url(f"{first.admin_url}/console/")
    # Browsers keep cookies per host, not per port: the same cookie reaches the other replica.
    page.goto(f"{second.admin_url}/console/clients")
    assert page.url == f"{second.admin_url}/console/clients"
    assert first.admin_id is not None and first.admin_id in page.locator(".signed-in").inner_text()
    cookie = context.cookies()[0]["value"]
    page.click("#sign-out")
    page.wait_for_url(f"{second.admin_url}/console/sign-in")
    # The old cookie, replayed on the first replica, opens nothing there either.
    with httpx.Client(cookies={"gateway_console": cookie}) as client:
        answer = client.get(f"{first.admin_url}/console/clients")
    assert answer.status_code == 303 and answer.headers["location"].endswith("/console/sign-in")


def test_the_console_lives_under_the_admin_public_url_path(tmp_path: Path, upstream: Upstream) -> None:
    policy = write_policy(tmp_path / "policy", POLICY.format(upstream=upstream.url))
    gateway = Gateway(tmp_path / "gw", None, [policy], account="console", admin_path="/admin")
    gateway.init()
    with serving(gateway), httpx.Client(base_url=gateway.admin_url) as client:
        assert gateway.admin_key is not None
        answer = client.get("/admin/console/")
        assert answer.status_code == 303 and answer.headers["location"] == "/admin/console/sign-in"
        form = client.get("/admin/console/sign-in")
        assert 'href="/admin/console/static/console.css"' in form.text
        assert client.get("/admin/console/static/console.css").status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = client.post(
            "/admin/console/sign-in", data={"csrf": csrf.group(1), "credential": gateway.admin_key}
        )
        assert signed.status_code == 303 and "Path=/admin/console/" in signed.headers["set-cookie"]
        assert client.get("/admin/console/clients").status_code == 200
        assert client.get("/console/").status_code == 404  # not at the root as well
