"""Policy reload (contract §4: "Reload (file change or SIGHUP) swaps rules atomically; an invalid
new version is refused and the old rules keep serving"). Each test has its own gateway and
policy folder, since it changes them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.checks import eventually
from tests.support.harness import Gateway, running_gateway
from tests.support.processes import Upstream, http_client

ROUTE = "  - {{id: {id}, match: GET /{id}, upstream: main, auth: none}}\n"


def policy_text(upstream: Upstream, *route_ids: str, extra: str = "") -> str:
    text = f"upstreams:\n  main:\n    url: {upstream.url}\nroutes:\n"
    return text + "".join(ROUTE.format(id=r) for r in route_ids) + extra


def write_atomically(path: Path, text: str) -> None:
    """Replace a policy file in one step (as editors and config managers do), so the poller never
    reads a half-written file. The temporary name does not end in .yaml."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def status(client: httpx.Client, url: str) -> int:
    return client.get(url).status_code


def wait_status(url: str, expected: int, timeout: float) -> float:
    """Poll `url` (fresh connection each time) until it answers `expected`; return the time taken."""
    started = time.monotonic()
    while True:
        with http_client(2.0) as fresh:
            if fresh.get(url).status_code == expected:
                return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{url} did not answer {expected} within {timeout}s")
        time.sleep(0.05)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    return folder


@pytest.fixture
def polling_gateway(tmp_path: Path, policy_dir: Path, upstream: Upstream) -> Iterator[Gateway]:
    (policy_dir / "routes.yaml").write_text(policy_text(upstream, "before"))
    with running_gateway(tmp_path / "gw", [policy_dir], reload={"interval": "0.2s"}) as gw:
        yield gw


def test_changed_policy_file_is_served_within_seconds(
    polling_gateway: Gateway, policy_dir: Path, upstream: Upstream, http: httpx.Client
) -> None:
    gw = polling_gateway
    assert status(http, gw.proxy_url + "/after") == 404
    write_atomically(policy_dir / "routes.yaml", policy_text(upstream, "before", "after"))
    assert wait_status(gw.proxy_url + "/after", 200, timeout=3.0) < 3.0
    assert status(http, gw.proxy_url + "/before") == 200
    gw.wait_for_log("policy reloaded")


def test_new_policy_file_in_a_folder_is_picked_up(
    polling_gateway: Gateway, policy_dir: Path, upstream: Upstream, http: httpx.Client
) -> None:
    write_atomically(policy_dir / "more.yaml", f"routes:\n{ROUTE.format(id='extra')}")
    wait_status(polling_gateway.proxy_url + "/extra", 200, timeout=3.0)
    assert status(http, polling_gateway.proxy_url + "/before") == 200


def test_removed_route_stops_being_served(
    polling_gateway: Gateway, policy_dir: Path, upstream: Upstream, http: httpx.Client
) -> None:
    write_atomically(policy_dir / "routes.yaml", policy_text(upstream, "other"))
    wait_status(polling_gateway.proxy_url + "/other", 200, timeout=3.0)
    assert status(http, polling_gateway.proxy_url + "/before") == 404


def test_invalid_policy_is_refused_and_old_rules_keep_serving(
    polling_gateway: Gateway, policy_dir: Path, upstream: Upstream, http: httpx.Client
) -> None:
    gw = polling_gateway
    file = policy_dir / "routes.yaml"
    offset = len(gw.log())
    broken = policy_text(
        upstream,
        "before",
        "added",
        extra="  - {id: broken-route, match: GET /broken, upstream: nowhere, auth: none}\n",
    )
    write_atomically(file, broken)
    log = gw.wait_for_log("policy reload refused", timeout=3.0, start=offset)
    assert str(file) in log
    assert "route broken-route" in log
    assert "upstream: no upstream named 'nowhere'" in log
    time.sleep(0.5)  # several more polls: still refused, nothing half-applied
    assert status(http, gw.proxy_url + "/before") == 200
    assert status(http, gw.proxy_url + "/added") == 404  # the valid part of a refused version is not served
    assert status(http, gw.proxy_url + "/broken") == 404
    # a fixed version is taken again
    write_atomically(file, policy_text(upstream, "before", "added"))
    wait_status(gw.proxy_url + "/added", 200, timeout=3.0)


def test_unparseable_policy_is_refused_with_file_and_line(
    polling_gateway: Gateway, policy_dir: Path, http: httpx.Client
) -> None:
    gw = polling_gateway
    file = policy_dir / "routes.yaml"
    offset = len(gw.log())
    write_atomically(file, "routes:\n  - {id: x, match: [unclosed\n")
    log = gw.wait_for_log("policy reload refused", timeout=3.0, start=offset)
    assert f"{file}: not valid YAML" in log
    assert status(http, gw.proxy_url + "/before") == 200


def test_sighup_reloads_when_polling_is_off(
    tmp_path: Path, policy_dir: Path, upstream: Upstream, http: httpx.Client
) -> None:
    file = policy_dir / "routes.yaml"
    file.write_text(policy_text(upstream, "before"))
    with running_gateway(tmp_path / "gw", [policy_dir], reload={"interval": 0}) as gw:
        write_atomically(file, policy_text(upstream, "before", "after"))
        time.sleep(0.6)
        assert status(http, gw.proxy_url + "/after") == 404  # polling is off: nothing changed yet
        gw.send_signal(signal.SIGHUP)
        wait_status(gw.proxy_url + "/after", 200, timeout=3.0)
        assert gw.proc is not None and gw.proc.poll() is None  # SIGHUP reloads, it does not stop the gateway


@pytest.mark.slow
def test_sighup_reloads_every_worker(tmp_path: Path, policy_dir: Path, upstream: Upstream) -> None:
    file = policy_dir / "routes.yaml"
    file.write_text(policy_text(upstream, "before"))
    with running_gateway(tmp_path / "gw", [policy_dir], reload={"interval": 0}, workers=2) as gw:
        write_atomically(file, policy_text(upstream, "before", "after"))
        gw.send_signal(signal.SIGHUP)
        wait_status(gw.proxy_url + "/after", 200, timeout=3.0)

        def both_workers_reloaded() -> bool:
            statuses = []
            for _ in range(30):  # fresh connections, spread over both workers
                with http_client(2.0) as fresh:
                    statuses.append(fresh.get(gw.proxy_url + "/after").status_code)
            return statuses == [200] * 30

        eventually("both workers serve the reloaded policy", both_workers_reloaded, 3.0)
