"""Fixtures of the console suite: a real headless Chromium (Debian's, driven by Playwright) and a
gateway with two workers, so a session made on one worker must hold on the other.

Chromium comes from the system package (`scripts/install` installs it; never `playwright
install`). Without it the browser tests are skipped with the reason, unless
GATEWAY_TEST_REQUIRE_BROWSER is set (as `.ci/run` does): then they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Gateway, serving, write_policy
from tests.support.processes import Upstream

CHROMIUM = Path(os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"

POLICY = """\
upstreams:
  documents:
    url: {upstream}
routes:
  - id: read-document
    match: GET /v1/users/{{userId}}/documents/{{docId}}
    upstream: documents
    permission: documents:read
    resource: /users/{{userId}}/documents/{{docId}}
  - id: health
    match: GET /health
    upstream: documents
    auth: none
"""


def _unavailable(why: str) -> None:
    if os.environ.get("GATEWAY_TEST_REQUIRE_BROWSER"):
        pytest.fail(f"the browser tests are required here: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Module-scoped: Playwright's sync API keeps its event loop running on this thread while it
    is open, and later suites call asyncio.run()."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (scripts/install installs Debian's chromium package)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is missing (scripts/install installs the test extras)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with Upstream(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("console")
    policy = write_policy(directory / "policy", POLICY.format(upstream=upstream.url))
    deployment = Gateway(
        directory, None, [policy], workers=2, account="console", usage={"flush_interval": "0.2s"}
    )
    deployment.init()
    with serving(deployment):
        yield deployment


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile (no cookies), a laptop-sized window; dialogs (the console's
    confirmations) are accepted."""
    made = browser.new_context(viewport={"width": 1280, "height": 800})
    made.on("page", lambda page: page.on("dialog", lambda dialog: dialog.accept()))
    try:
        yield made
    finally:
        made.close()


def screenshot(page: Any, name: str) -> None:
    """A full-page screenshot for reviewers (tests/console/screenshots/, not committed)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
