"""The console across two replicas sharing a PostgreSQL store: a session made on one holds on
the other, and a sign-out on one ends it on both."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

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
def test_a_session_holds_across_replicas_and_ends_on_both(replicas: tuple[Gateway, Gateway]) -> None:
    first, second = replicas
    assert first.admin_key is not None and first.admin_id is not None
    with httpx.Client() as browser:  # server-side sessions: a cookie jar is all a browser adds here
        form = browser.get(f"{first.admin_url}/console/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf is not None
        signed = browser.post(
            f"{first.admin_url}/console/sign-in", data={"csrf": csrf.group(1), "credential": first.admin_key}
        )
        assert signed.status_code == 303
        cookie = browser.cookies["gateway_console"]
    # Browsers keep cookies per host, not per port: the same cookie reaches the other replica.
    with httpx.Client(cookies={"gateway_console": cookie}) as browser:
        page = browser.get(f"{second.admin_url}/console/clients")
        assert page.status_code == 200 and first.admin_id in page.text
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        assert (
            browser.post(f"{second.admin_url}/console/sign-out", data={"csrf": token.group(1)}).status_code
            == 303
        )
    # Signed out on the second: the first replica refuses the same cookie at once.
    with httpx.Client(cookies={"gateway_console": cookie}) as browser:
        answer = browser.get(f"{first.admin_url}/console/clients")
    assert answer.status_code == 303 and answer.headers["location"].endswith("/console/sign-in")
