"""The benchmark runner behind `scripts/bench`.

    run_benchmark(ids, settings) → list of result records (see `record`)

For each suite, the selected scenarios and their baselines run interleaved (round 1 in order,
round 2 reversed, ...; so A B, B A, A B ...), each run a wrk measurement pinned to the load core.
A scenario's ratio in a round is its throughput over its baseline's in that same round; the
record gives the median over the rounds and the range. CPU per request is the system under
test's utime+stime (/proc/<pid>/stat, summed over its process group) over the run, divided by
the requests completed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import forward_auth as _forward_auth  # noqa: F401  (registers its scenarios)
from benchmarks import ratelimit as _ratelimit  # noqa: F401  (registers its scenarios)
from benchmarks import scenarios as _scenarios  # noqa: F401  (registers the scenarios)
from benchmarks.registry import REGISTRY, SUITES, Context, Scenario, Target
from benchmarks.services import (
    CORE_LOAD,
    CORE_SUT,
    LUA_SCRIPT,
    ROOT,
    VENV_BIN,
    Skip,
    Stack,
    http_status,
    missing_tools,
    tool,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
KEYS = ("scenario", "baseline", "ratio_median", "ratio_min", "ratio_max", "rps", "p50_ms", "p99_ms",
        "cpu_us_per_req")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Settings:
    rounds: int = 5
    duration: int = 3  # seconds per measured run (wrk counts whole seconds)
    warmup: int = 1  # seconds of unmeasured load before a gateway's first measured run
    connections: int = 64  # wrk connections for saturated runs
    rate: int = 1000  # offered requests/s of the fixed-rate scenarios
    rate_connections: int = 16
    threads: int = 1  # wrk threads (one core for the load generator)
    quick: bool = False
    log: Callable[[str], None] = field(default=lambda line: print(line, flush=True))


def quick_settings(**overrides: Any) -> Settings:
    settings = Settings(rounds=3, duration=1, warmup=1, quick=True)
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


class ScenarioFailed(Exception):
    pass


@dataclass
class Run:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    cpu_us_per_req: float
    errors: int


# ------------------------------------------------------------------------------ measurement

def _group_stats(pgid: int) -> Iterator[list[bytes]]:
    """/proc/<pid>/stat of every live process in a process group, from its field 3 on."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            yield fields


def group_cpu_ticks(pgid: int) -> int:
    """utime + stime (clock ticks) of every live process in a process group."""
    return sum(int(f[11]) + int(f[12]) for f in _group_stats(pgid))  # fields 14 and 15


def group_rss(pgid: int) -> int:
    """Resident memory in bytes, summed over a process group (a gateway's supervisor and workers)."""
    return sum(int(f[21]) for f in _group_stats(pgid)) * os.sysconf("SC_PAGE_SIZE")  # field 24


def run_wrk(target: Target, settings: Settings, duration: int) -> Run:
    wrk = tool("wrk")
    if wrk is None:
        raise Skip("wrk is not installed (scripts/bench installs it)")
    connections = target.connections or settings.connections
    cmd = ["taskset", "-c", CORE_LOAD, wrk, f"-t{settings.threads}", f"-c{max(connections, settings.threads)}",
           f"-d{duration}s", "--timeout", "10s", "-s", str(LUA_SCRIPT)]
    for name, value in target.headers.items():
        cmd += ["-H", f"{name}: {value}"]
    cmd.append(target.url)
    env = {**os.environ, "BENCH_RATE": str(target.rate), "BENCH_THREADS": str(settings.threads),
           "BENCH_TOKENS": str(target.tokens_file or ""), "BENCH_METHOD": target.method, "BENCH_BODY": ""}
    temporary: list[Path] = []

    def temp_file(prefix: str, text: str) -> str:
        fd, name = tempfile.mkstemp(prefix=prefix)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        temporary.append(Path(name))
        return name

    if target.body is not None:
        env["BENCH_BODY"] = temp_file("bench-body-", target.body)
    fresh: list[str] = []
    if target.fresh_pool is not None:
        want = target.pool_slice or target.fresh_rate * duration + 1
        fresh = target.fresh_pool[target.fresh_offset:target.fresh_offset + want]
        if len(fresh) < want:  # the pool ran out: start again from the beginning
            target.fresh_reused = True
            target.fresh_offset = 0
            fresh = target.fresh_pool[:want]
        env["BENCH_TOKENS"] = temp_file("bench-tokens-", "".join(f"{t}\n" for t in fresh))
    try:
        groups = [target.sut.pgid, *(s.pgid for s in target.also)]
        before = sum(group_cpu_ticks(g) for g in groups)
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=duration + 60)
        after = sum(group_cpu_ticks(g) for g in groups)
    finally:
        for path in temporary:
            path.unlink()
    code = target.sut.process.poll()
    if code is not None:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
        raise ScenarioFailed(f"{target.sut.name} {how}; its log ends:\n{target.sut.log_tail(10)}")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise ScenarioFailed(f"wrk failed ({out.returncode}): {(out.stderr or out.stdout).strip()[-500:]}")
    r = json.loads(line.removeprefix("BENCH_RESULT "))
    requests = r["requests"]
    if target.pool_slice:
        target.fresh_offset += len(fresh)
    elif target.fresh_pool is not None:
        target.fresh_offset += min(requests, len(fresh))
        if requests > len(fresh):
            target.fresh_reused = True
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    if requests == 0:
        raise ScenarioFailed(f"no request completed ({socket_errors} socket errors)")
    if r["status"] > 0.01 * requests or socket_errors > 0.01 * requests:
        raise ScenarioFailed(
            f"{r['status']} of {requests} answers were not 2xx/3xx and {socket_errors} socket errors: "
            "the numbers would not mean what they say"
        )
    return Run(
        rps=requests / (r["duration_us"] / 1e6),
        requests=requests,
        p50_ms=r["p50_us"] / 1000,
        p99_ms=r["p99_us"] / 1000,
        cpu_us_per_req=(after - before) / CLK_TCK * 1e6 / requests,
        errors=r["status"] + socket_errors,
    )


def check_target(scenario: Scenario, target: Target) -> None:
    """One request before measuring: the scenario must answer what it is meant to answer."""
    headers = dict(target.headers)
    if target.tokens_file is not None:
        headers["Authorization"] = target.tokens_file.read_text().splitlines()[0]
    if target.fresh_pool:
        headers["Authorization"] = target.fresh_pool[-1]  # the pool's last: used last, if ever
    deadline = time.monotonic() + 10  # new clients and grants reach a running gateway within ~1 s
    while True:
        status = http_status(target.url, headers, method=target.method, body=target.body)
        if status == target.expect_status:
            return
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"{target.url} answered {status}, expected {target.expect_status}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------ running

def plan(ids: Sequence[str] | None, quick: bool) -> list[tuple[str, list[str], list[str]]]:
    """(suite, members to run in order, scenarios to report) for the selection."""
    if ids:
        unknown = [i for i in ids if i not in REGISTRY]
        if unknown:
            raise SystemExit(f"unknown scenario(s): {', '.join(unknown)} (scripts/bench --list)")
        chosen = list(ids)
    else:
        chosen = [s.id for s in REGISTRY.values() if s.quick or not quick]
    order = list(REGISTRY)
    out = []
    for suite in SUITES:
        report = [i for i in chosen if REGISTRY[i].suite == suite]
        if not report:
            continue
        members = set(report)
        for i in report:
            baseline = REGISTRY[i].baseline
            if baseline is not None:
                members.add(baseline)
        out.append((suite, sorted(members, key=order.index), sorted(report, key=order.index)))
    return out


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def record(scenario: Scenario, runs: list[Run], baseline_runs: list[Run] | None, target: Target | None,
           status: str = "ok", reason: str | None = None) -> dict[str, Any]:
    ratios: list[float] = []
    if baseline_runs and len(baseline_runs) == len(runs):
        ratios = [a.rps / b.rps for a, b in zip(runs, baseline_runs, strict=True)]
    if status == "ok" and scenario.baseline is not None and not ratios:
        reason = f"baseline {scenario.baseline} did not run"

    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    return {
        "scenario": scenario.id,
        "baseline": scenario.baseline,
        "ratio_median": rounded(_median(ratios), 4),
        "ratio_min": rounded(min(ratios), 4) if ratios else None,
        "ratio_max": rounded(max(ratios), 4) if ratios else None,
        "rps": rounded(_median([r.rps for r in runs]), 1),
        "p50_ms": rounded(_median([r.p50_ms for r in runs]), 3),
        "p99_ms": rounded(_median([r.p99_ms for r in runs]), 3),
        "cpu_us_per_req": rounded(_median([r.cpu_us_per_req for r in runs]), 1),
        "status": status,
        "reason": reason,
        "rounds": len(runs),
        "rps_rounds": [round(r.rps, 1) for r in runs],
        "ratio_rounds": [round(x, 4) for x in ratios],
        "offered_rps": target.rate if target is not None and target.rate else None,
        "sut_cores": target.sut.cpus if target is not None else None,
        "description": scenario.description,
    }


def run_suite(ctx: Context, settings: Settings, suite: str, members: list[str], report: list[str]) -> list[dict[str, Any]]:
    log = settings.log
    targets: dict[str, Target] = {}
    problems: dict[str, tuple[str, str]] = {}  # id → (status, reason)
    for sid in members:
        try:
            target = REGISTRY[sid].target(ctx)
            check_target(REGISTRY[sid], target)
            targets[sid] = target
        except Skip as exc:
            problems[sid] = ("skipped", str(exc))
        except Exception as exc:  # a broken scenario must not sink the others
            problems[sid] = ("failed", f"{type(exc).__name__}: {exc}")
            log(f"  {sid}: setup failed: {exc}")
    runnable = [m for m in members if m in targets]
    # Nothing to report unless some reported scenario can run.
    if not any(m in targets for m in report):
        runnable = []
    if runnable:
        log(f"suite {suite}: {' '.join(runnable)} × {settings.rounds} round(s) of {settings.duration} s")
    warmed: set[int] = set()
    for sid in runnable:
        target = targets[sid]
        if target.sut.warmup and settings.warmup > 0 and target.sut.pgid not in warmed:
            warmed.add(target.sut.pgid)
            with contextlib.suppress(ScenarioFailed):
                run_wrk(target, settings, settings.warmup)
    runs: dict[str, list[Run]] = {m: [] for m in runnable}
    for n in range(settings.rounds):
        order = runnable if n % 2 == 0 else runnable[::-1]
        for sid in order:
            if sid in problems:
                continue
            try:
                run = run_wrk(targets[sid], settings, settings.duration)
            except (ScenarioFailed, Skip) as exc:
                problems[sid] = ("failed", str(exc))
                log(f"  {sid}: failed: {exc}")
                continue
            runs[sid].append(run)
            log(f"  round {n + 1} {sid:<24} {run.rps:>10,.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                f"  p99 {run.p99_ms:6.2f} ms  {run.cpu_us_per_req:7.1f} µs/req")
    records = []
    for sid in report:
        scenario = REGISTRY[sid]
        status, reason = problems.get(sid, ("ok", None))
        base_runs = runs.get(scenario.baseline) if scenario.baseline else None
        if scenario.baseline in problems and status == "ok":
            reason = f"baseline {scenario.baseline} {problems[scenario.baseline][0]}: {problems[scenario.baseline][1]}"
        reported = targets.get(sid)
        if status == "ok" and reported is not None and reported.fresh_reused:
            reason = "ran out of fresh credentials: some were sent twice, so caches were partly warm"
        records.append(record(scenario, runs.get(sid, []) if status == "ok" else [],
                              base_runs, reported, status, reason))
    return records


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT raise KeyboardInterrupt, so the `finally` that stops every process runs
    (SIGINT too: a shell that starts us in the background leaves it ignored)."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt()

    previous: dict[signal.Signals, Any] = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread (a test runner's worker, say)
        pass
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_benchmark(ids: Sequence[str] | None = None, settings: Settings | None = None,
                  keep_workdir: bool = False,
                  after: Callable[[Context], None] | None = None) -> list[dict[str, Any]]:
    """Run the selected scenarios (default: all, or the quick set) and return their records.
    Starts every process it needs and stops all of them before returning, whatever happens."""
    settings = settings or Settings()
    missing = missing_tools()
    if missing:
        raise Skip(f"missing: {', '.join(missing)} (scripts/bench installs them)")
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    stack = Stack(workdir)
    records: list[dict[str, Any]] = []
    try:
        with _signals_as_interrupt():
            ctx = Context(stack, settings)
            for suite, members, report in plan(ids, settings.quick):
                records += run_suite(ctx, settings, suite, members, report)
                ctx.release_transient()
            if after is not None:
                after(ctx)
    finally:
        stack.close()
        if keep_workdir:
            settings.log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return records


# ------------------------------------------------------------------------------ output

def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cpu": model, "cores": os.cpu_count(), "kernel": platform.release(),
            "python": platform.python_version(), "load_average": [round(x, 2) for x in os.getloadavg()]}


def versions() -> dict[str, str]:
    out = {}
    for name, args in (("nginx", ["-v"]), ("haproxy", ["-v"]), ("wrk", ["-v"])):
        path = tool(name)
        if path is None:
            continue
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            p = subprocess.run([path, *args], capture_output=True, text=True, timeout=10)
            text = (p.stdout + p.stderr).strip().splitlines()
            out[name] = text[0] if text else ""
    return out


def core_split(records: list[dict[str, Any]]) -> str:
    return (f"cores: wrk (1 thread) and the upstream nginx (1 worker) pinned to core {CORE_LOAD}; "
            f"the system under test (gateway worker, nginx proxy, HAProxy) pinned to core {CORE_SUT}; "
            f"exceptions say so in the `SUT cores` column (workers_2: cores {CORE_LOAD},{CORE_SUT}, "
            "sharing the load core)")


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(records: list[dict[str, Any]]) -> str:
    head = (f"{'scenario':<26} {'baseline':<18} {'ratio':>7} {'range':>13} {'req/s':>9} "
            f"{'p50 ms':>7} {'p99 ms':>7} {'CPU µs/req':>10} {'SUT cores':>9}")
    lines = [head, "-" * len(head)]
    for r in records:
        if r["status"] != "ok":
            reason = (r["reason"] or "").splitlines()[0][:120]
            lines.append(f"{r['scenario']:<26} {r['baseline'] or '-':<18} {r['status']}: {reason}")
            continue
        rng = "-" if r["ratio_min"] is None else f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f}"
        rps = _fmt(r["rps"], ",.0f")
        if r["offered_rps"]:
            rps += "*"
        lines.append(
            f"{r['scenario']:<26} {r['baseline'] or '-':<18} {_fmt(r['ratio_median'], '.3f'):>7} {rng:>13} "
            f"{rps:>9} {_fmt(r['p50_ms'], '.2f'):>7} {_fmt(r['p99_ms'], '.2f'):>7} "
            f"{_fmt(r['cpu_us_per_req'], '.1f'):>10} {r['sut_cores'] or '-':>9}"
        )
        if r["reason"]:
            lines.append(f"{'':<26} note: {r['reason']}")
    if any(r.get("offered_rps") for r in records):
        rate = next(r["offered_rps"] for r in records if r.get("offered_rps"))
        lines.append(f"* fixed offered rate of {rate:,} req/s (paced wrk Lua script): req/s is the rate "
                     "achieved, p50/p99 are the latencies that matter")
    lines.append("ratio = scenario req/s ÷ baseline req/s, median over the rounds (range: min-max); "
                 "CPU µs/req of the system under test (for direct*: the upstream nginx)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=(
        "Benchmark the gateway against nginx and HAProxy; print a table and write "
        "benchmarks/results/latest.json."))
    parser.add_argument("--quick", action="store_true", help="3 rounds of 1 s, fewer scenarios (< 3 min)")
    parser.add_argument("--only", metavar="IDS", help="comma-separated scenario ids (baselines run too)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument("--rounds", type=int, help="rounds (at least 3 for the ratios to mean much)")
    parser.add_argument("--duration", type=int, help="seconds per measured run")
    parser.add_argument("--connections", type=int, help="wrk connections for saturated runs")
    parser.add_argument("--rate", type=int, help="offered req/s of the fixed-rate scenarios")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "latest.json", help="JSON results file")
    parser.add_argument("--profile", metavar="ID", help="after the runs, profile the gateway under "
                        "this scenario's load with py-spy and print where the time goes")
    parser.add_argument("--locust", type=int, metavar="SECONDS", help="after the runs, run "
                        "benchmarks/locustfile.py headless against the gateway for SECONDS")
    parser.add_argument("--keep-workdir", action="store_true", help="keep configs and logs")
    args = parser.parse_args(argv)

    if args.list:
        for s in REGISTRY.values():
            flag = "" if s.quick else "  (full runs only)"
            print(f"{s.id:<26} baseline {s.baseline or '-':<18} suite {s.suite:<8} {s.description}{flag}")
        return 0
    settings = quick_settings() if args.quick else Settings()
    for name in ("rounds", "duration", "connections", "rate"):
        if getattr(args, name) is not None:
            setattr(settings, name, getattr(args, name))
    ids = [i.strip() for i in args.only.split(",") if i.strip()] if args.only else None

    started = time.monotonic()
    info = machine()
    header = [
        f"gateway benchmarks, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M UTC}",
        f"machine: {info['cpu']}, {info['cores']} cores, Linux {info['kernel']}, Python {info['python']}, "
        f"load average at start {' '.join(map(str, info['load_average']))}",
        "tools: " + "; ".join(versions().values()),
        f"settings: {settings.rounds} rounds × {settings.duration} s, wrk {settings.threads} thread / "
        f"{settings.connections} connections; fixed rate {settings.rate} req/s over "
        f"{settings.rate_connections} connections",
        core_split([]),
    ]
    for line in header:
        settings.log(line)

    def extras(ctx: Context) -> None:
        if args.profile:
            from benchmarks.profile import profile_scenario

            profile_scenario(ctx, args.profile, settings)
        if args.locust:
            from benchmarks.profile import run_locust

            run_locust(ctx, args.locust, settings)

    try:
        records = run_benchmark(ids, settings, keep_workdir=args.keep_workdir, after=extras)
    except KeyboardInterrupt:
        settings.log("interrupted: everything started was stopped")
        return 130
    except Skip as exc:
        settings.log(f"cannot run: {exc}")
        return 2
    elapsed = time.monotonic() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    text = "\n".join([*header, f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
                      f"took {elapsed:.0f} s", "", table(records)])
    args.out.with_suffix(".txt").write_text(text + "\n")
    print()
    print(table(records))
    print(f"\nwrote {_relative(args.out)} (and .txt) in {elapsed:.0f} s")
    return 0 if all(r["status"] != "failed" for r in records) else 1


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["KEYS", "VENV_BIN", "Settings", "main", "quick_settings", "run_benchmark"]
