"""Defect 9: the workers of one gateway act as one.

- The token endpoint's throttle counted per worker process, so with N workers a caller got N
  times the configured failures; the counts are shared now, and bounded (a table of fixed size,
  whatever client ids callers make up).
- `/readyz` was answered by whichever worker took the connection; now it is ready only when
  every worker reports ready. A worker frozen with SIGSTOP makes the probe fail, on any worker.
- Every worker ran the same maintenance writes; one worker per replica does now.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.group import Counters, key_hash
from tests.hardening.conftest import running
from tests.oauth.helpers import basic
from tests.support.harness import Gateway
from tests.support.processes import http_client

PER_CLIENT = 3
THROTTLE = {"failures_per_client": PER_CLIENT, "failures_per_address": 1000}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory, policy_file: Path) -> Iterator[Gateway]:
    with running(tmp_path_factory.mktemp("group"), policy_file, workers=2, throttle=THROTTLE) as gw:
        yield gw


def test_the_throttle_limit_holds_across_workers(two_workers: Gateway) -> None:
    client_id, _ = two_workers.admin().new_client_with_key()
    wrong = {"Authorization": basic(client_id, "gwcs_wrong")}
    statuses = []
    with http_client(fresh=True) as http:  # a new connection each time: both workers get some
        for _ in range(PER_CLIENT + 8):
            response = http.post(two_workers.token_url, data={"grant_type": "client_credentials"}, headers=wrong)
            statuses.append(response.status_code)
    assert statuses[:PER_CLIENT] == [401] * PER_CLIENT, statuses
    assert statuses[PER_CLIENT:] == [429] * 8, statuses  # per worker it would take 2 x 3 failures


def test_one_worker_runs_the_maintenance(two_workers: Gateway) -> None:
    deadline = time.monotonic() + 5
    while "runs this replica's maintenance" not in two_workers.log():
        assert time.monotonic() < deadline, two_workers.log()[-3000:]
        time.sleep(0.05)
    assert two_workers.log().count("runs this replica's maintenance") == 1


def _readyz(gw: Gateway) -> int | None:
    with contextlib.suppress(httpx.HTTPError), http_client(0.5, fresh=True) as http:
        return http.get(gw.admin_url + "/readyz").status_code
    return None  # the frozen worker took the connection


def test_readyz_speaks_for_every_worker(two_workers: Gateway) -> None:
    assert _readyz(two_workers) == 200
    frozen = next(p for p in two_workers.worker_pids() if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes())
    os.kill(frozen, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 6
        while _readyz(two_workers) != 503:
            assert time.monotonic() < deadline, "a frozen worker never made /readyz fail"
    finally:
        os.kill(frozen, signal.SIGCONT)
    deadline = time.monotonic() + 6
    while _readyz(two_workers) != 200:
        assert time.monotonic() < deadline, "ready again once the worker is back"


def test_counters_are_bounded_whatever_the_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_GROUP_DIR", str(tmp_path))
    counters = Counters("bounded", slots=1024)
    size = (tmp_path / "bounded").stat().st_size
    for i in range(5000):
        counters.add(f"sc_{'x' * 2000}{i}")  # long, caller-chosen ids
    assert (tmp_path / "bounded").stat().st_size == size
    counters.add("mine")
    counters.add("mine")
    assert counters.estimate("mine")[0] == 2


def test_a_count_behind_an_expired_neighbour_is_still_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two keys that hash to the same first slot: the second lives in the next one. When the
    first key's counts expire, the second's must still be found (a lookup that stopped at the
    expired slot read 0 failures: the throttle forgot an attacker's count)."""
    monkeypatch.setenv("GATEWAY_GROUP_DIR", str(tmp_path))
    slots = 1024
    first = "k0"
    second = next(f"k{i}" for i in range(1, 100_000) if key_hash(f"k{i}") % slots == key_hash(first) % slots)
    now = [0.0]
    counters = Counters("neighbours", slots=slots, window=60.0, clock=lambda: now[0])
    counters.add(first)
    counters.add(second)  # in the slot after the first's
    now[0] = 61.0
    counters.add(second)
    counters.add(second)
    now[0] = 121.0  # the first key's counts no longer count; the second's last window does
    estimate, _ = counters.estimate(second)
    assert estimate == pytest.approx(2 * (1 - 1 / 60))
    counters.add(second)  # and counting goes on in its own slot, not in a second one
    assert counters.estimate(second)[0] == pytest.approx(1 + 2 * (1 - 1 / 60))
