"""Keeps the benchmark harness from rotting: one scenario, one short round, through the harness's
Python API. No speed assertion: this machine is shared and the numbers are for scripts/bench."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.harness import KEYS, Settings, run_benchmark
from benchmarks.services import missing_tools

pytestmark = pytest.mark.slow


def test_public_scenario_runs_and_reports_a_complete_record() -> None:
    missing = missing_tools()
    if missing:
        pytest.skip(f"benchmark tools not installed: {', '.join(missing)} (scripts/bench installs them)")
    settings = Settings(rounds=1, duration=1, warmup=0, connections=8, log=lambda line: None)

    records = run_benchmark(["public"], settings)

    assert len(records) == 1
    record = records[0]
    assert record["status"] == "ok", record["reason"]
    assert set(KEYS) <= record.keys()
    assert record["scenario"] == "public"
    assert record["baseline"] == "nginx_proxy"
    for key in ("ratio_median", "ratio_min", "ratio_max", "rps", "p50_ms", "p99_ms", "cpu_us_per_req"):
        assert isinstance(record[key], float), key
        assert record[key] > 0, key


@pytest.mark.parametrize(("mode", "route", "requests"), [
    ("proxy", "public", 300),
    ("server", "public", 300),
    # A saturated event loop for several seconds, with the real store and change feed: every warm
    # authenticated request must pass. Before the worker handed the GIL over every 1 ms, the feed's
    # poll thread starved for up to 0.7 s and such runs answered some requests 503.
    ("proxy", "access_key", 15_000),
])
def test_inprocess_harness_proxies_every_request(mode: str, route: str, requests: int) -> None:
    """benchmarks/inprocess.py drives the real protocol and pipeline over in-memory transports; it
    exits non-zero when any answer is not a 200 (a broken pipeline cannot pass as fast)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--mode", mode, "--route", route,
         "--requests", str(requests), "--rounds", "2"],
        capture_output=True, text=True, timeout=180, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.match(rf"{mode} {route}: {requests:,} requests × 2 rounds, CPU µs per request: min [0-9.]+ ",
                    done.stdout), done.stdout


def test_streaming_measurement_downloads_every_byte_from_each_target() -> None:
    from benchmarks.services import Skip
    from benchmarks.streaming import MiB, measure

    try:
        result = measure(64 * MiB, rounds=1)  # raises ServiceError if a target sent less
    except Skip as exc:
        pytest.skip(str(exc))
    assert set(result.speeds) == {"direct", "nginx_proxy", "gateway"}
    assert all(len(speeds) == 1 and speeds[0] > 0 for speeds in result.speeds.values())
    assert result.cpu["gateway"][0] > 0  # the gateway's own process group did the work
    assert 0 < result.rss_before <= result.rss_peak
