"""Graceful shutdown (config `shutdown_timeout`): on SIGTERM the gateway lets in-flight requests
finish, then exits 0. Each test has its own gateway, since it stops it."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.support.harness import Gateway, running_gateway
from tests.support.processes import MARK, Upstream, http_client, listening


def wait_arrived(upstream: Upstream, mark: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not upstream.marked(mark):
        if time.monotonic() > deadline:
            raise AssertionError("the slow request never reached the upstream")
        time.sleep(0.02)


def in_flight_request_survives(gw: Gateway, upstream: Upstream, mark: str, sig: int) -> None:
    """Start a request the upstream answers after ~1 s, send `sig` while it is in flight, and
    check it completes with 200 and the gateway then exits 0."""
    results: list[httpx.Response | BaseException] = []

    def call() -> None:
        try:
            with http_client(timeout=15) as client:
                results.append(client.get(gw.proxy_url + "/echo/slow?up_sleep=1", headers={MARK: mark}))
        except BaseException as exc:
            results.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        wait_arrived(upstream, mark)
        sent_at = time.monotonic()
        gw.send_signal(sig)
    finally:
        thread.join(20)
    [result] = results
    assert isinstance(result, httpx.Response), f"the in-flight request failed: {result!r}"
    assert result.status_code == 200
    assert result.json()["query"] == "up_sleep=1"  # the upstream's complete answer
    code = gw.wait(15)
    assert code == 0, gw.log()
    assert time.monotonic() - sent_at < 10  # it did not wait for shutdown_timeout to run out
    assert not listening(gw.port) and not listening(gw.admin_port)


def test_in_flight_request_completes_after_sigterm(
    tmp_path: Path, policy_file: Path, upstream: Upstream, mark: str
) -> None:
    with running_gateway(tmp_path, [policy_file], shutdown_timeout="20s") as gw:
        in_flight_request_survives(gw, upstream, mark, signal.SIGTERM)


def test_in_flight_request_completes_after_sigint(
    tmp_path: Path, policy_file: Path, upstream: Upstream, mark: str
) -> None:
    with running_gateway(tmp_path, [policy_file], shutdown_timeout="20s") as gw:
        in_flight_request_survives(gw, upstream, mark, signal.SIGINT)


@pytest.mark.slow
def test_in_flight_request_completes_after_sigterm_with_two_workers(
    tmp_path: Path, policy_file: Path, upstream: Upstream, mark: str
) -> None:
    with running_gateway(tmp_path, [policy_file], shutdown_timeout="20s", workers=2) as gw:
        in_flight_request_survives(gw, upstream, mark, signal.SIGTERM)


def test_idle_gateway_exits_0_promptly_on_sigterm(tmp_path: Path, policy_file: Path) -> None:
    with running_gateway(tmp_path, [policy_file]) as gw:
        started = time.monotonic()
        gw.send_signal(signal.SIGTERM)
        assert gw.wait(10) == 0, gw.log()
        assert time.monotonic() - started < 5
