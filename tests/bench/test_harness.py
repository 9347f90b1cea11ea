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


@pytest.mark.parametrize("mode", ["proxy", "server"])
def test_inprocess_harness_proxies_every_request(mode: str) -> None:
    """benchmarks/inprocess.py drives the real protocol and pipeline over in-memory transports; it
    exits non-zero when any answer is not a 200 (a broken pipeline cannot pass as fast)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", "--mode", mode, "--requests", "300", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.match(rf"{mode}: 300 requests × 1 rounds, CPU µs per request: min [0-9.]+ ", done.stdout), done.stdout
