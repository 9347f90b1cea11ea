"""Extras of `scripts/bench`: `--profile ID` (py-spy on the gateway under a scenario's load, and a
summary of where the time goes, by function and by layer) and `--locust SECONDS` (the locustfile,
headless, against the bench gateway)."""

from __future__ import annotations

import collections
import os
import re
import subprocess
import time
from pathlib import Path

from benchmarks.harness import RESULTS_DIR, ScenarioFailed, Settings, run_wrk
from benchmarks.registry import REGISTRY, Context
from benchmarks.scenarios import bench_client
from benchmarks.services import (
    CORE_LOAD,
    PROTECTED_PATH,
    PUBLIC_PATH,
    ROOT,
    VENV_BIN,
    Skip,
    run_gateway_cli,
)

# Which layer a frame belongs to, by its file path (first match wins).
LAYERS = [
    ("gateway: metrics", re.compile(r"gateway/metrics|prometheus_client")),
    ("gateway: proxy app", re.compile(r"gateway/proxy\.py")),
    ("gateway: HTTP server (gateway/http1.py; its writes are send() syscalls)", re.compile(r"gateway/http1\.py")),
    ("gateway: upstream client (pool, connection; its writes are send() syscalls)",
     re.compile(r"gateway/pipeline/forward/(connection|pool)\.py")),
    ("gateway: forward (headers, body, relay)", re.compile(r"gateway/pipeline/forward")),
    ("gateway: identity headers (mutate)", re.compile(r"gateway/pipeline/mutate")),
    ("gateway: paths", re.compile(r"gateway/paths")),
    ("gateway: route table", re.compile(r"gateway/policy")),
    ("gateway: authn/authz", re.compile(r"gateway/pipeline/auth|gateway/identity|jwt|cryptography")),
    ("gateway: background (change feed polls in a thread)", re.compile(r"gateway/identity/directory|gateway/background|concurrent/futures|threading")),
    ("gateway: other", re.compile(r"gateway/")),
    ("aiohttp client (upstream)", re.compile(r"aiohttp|yarl|multidict|aiohappyeyeballs")),
    ("uvicorn + httptools (HTTP server)", re.compile(r"uvicorn|httptools")),
    ("event loop + socket I/O (uvloop's C code, under asyncio's Runner.run)", re.compile(r"asyncio|uvloop")),
]


def _frame_parts(frame: str) -> tuple[str, str]:
    """`func (path/to/file.py:123)` → (`func`, `path/to/file.py`)."""
    m = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    return (m.group(1), m.group(2)) if m else (frame, "")


def _layer(path: str, func: str) -> str:
    for name, pattern in LAYERS:
        if pattern.search(path):
            return name
    if not path:
        return "native / idle"
    return "other Python"


def summarize(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function, and self share per layer."""
    self_count: collections.Counter[str] = collections.Counter()
    incl_count: collections.Counter[str] = collections.Counter()
    layer_count: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        names = []
        for frame in frames:
            func, path = _frame_parts(frame)
            short = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path)
            short = re.sub(rf"^{re.escape(str(ROOT))}/", "", short)
            names.append((f"{func} ({short})", path, func))
        self_count[names[-1][0]] += count
        layer_count[_layer(names[-1][1], names[-1][2])] += count
        for name in {n[0] for n in names}:
            incl_count[name] += count
    if total == 0:
        return "py-spy recorded no samples"
    out = [f"{total} samples", "", "self time by layer:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in layer_count.most_common()]
    out += ["", f"top {top} functions by self time:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in self_count.most_common(top)]
    out += ["", f"top {top} functions by inclusive time:"]
    out += [f"  {100 * c / total:5.1f}%  {name}" for name, c in incl_count.most_common(top)]
    return "\n".join(out)


def profile_scenario(ctx: Context, sid: str, settings: Settings) -> None:
    log = settings.log
    pyspy = VENV_BIN / "py-spy"
    if not pyspy.exists():
        log("--profile: py-spy is not installed in .venv (scripts/bench --profile installs it)")
        return
    if sid not in REGISTRY:
        log(f"--profile: unknown scenario {sid}")
        return
    try:
        target = REGISTRY[sid].target(ctx)
    except Skip as exc:
        log(f"--profile {sid}: skipped: {exc}")
        return
    if not target.sut.warmup:
        log(f"--profile {sid}: the system under test is not the gateway; nothing to profile")
        return
    duration = max(settings.duration, 5)
    raw = RESULTS_DIR / f"profile-{sid}.txt"
    speedscope = RESULTS_DIR / f"profile-{sid}.speedscope.json"
    log(f"profiling {sid} (gateway pid {target.sut.pgid}) for {duration} s with py-spy ...")
    # py-spy runs on the load core, so the gateway's core serves as in the measured runs.
    common = ["taskset", "-c", CORE_LOAD, str(pyspy), "record", "--pid", str(target.sut.pgid),
              "--subprocesses", "--nonblocking", "--rate", "200", "--duration", str(duration + 1)]
    for fmt, out in (("raw", raw), ("speedscope", speedscope)):
        spy = subprocess.Popen([*common, "--format", fmt, "--output", str(out)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)
            try:
                run = run_wrk(target, settings, duration)
                log(f"  under py-spy ({fmt}): {run.rps:,.0f} req/s, {run.cpu_us_per_req:.1f} µs/req")
            except ScenarioFailed as exc:
                log(f"  load failed: {exc}")
            _, err = spy.communicate(timeout=duration + 30)
            if spy.returncode != 0:
                log(f"  py-spy failed: {err.decode(errors='replace').strip()[-400:]}")
                return
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
    summary = summarize(raw)
    raw.with_suffix(".summary.txt").write_text(summary + "\n")
    log(f"profile of {sid}: {raw.name}, {speedscope.name} (open in speedscope.app), summary:")
    log(summary)


def run_locust(ctx: Context, seconds: int, settings: Settings) -> None:
    log = settings.log
    locust = VENV_BIN / "locust"
    if not locust.exists():
        log("--locust: locust is not installed in .venv (scripts/bench installs it)")
        return
    gateway = ctx.gateway()
    env = {**os.environ, "GATEWAY_PUBLIC_PATHS": PUBLIC_PATH, "GATEWAY_PROTECTED_PATH": PROTECTED_PATH}
    try:  # with issue 3: a granted client and one without a grant, for the 200 and 403 calls
        ctx.require("identity")
        env["GATEWAY_ACCESS_KEY"] = bench_client(ctx, gateway)["access_key"]
        denied = run_gateway_cli(gateway.info["config"], "clients", "create", "--name", "bench-denied",
                                 "--scope", "documents.read", "--with-key")
        env["GATEWAY_DENIED_ACCESS_KEY"] = denied["accessKey"]
        time.sleep(1.5)  # the running gateway sees new clients within a second
    except Skip:
        pass
    cmd = ["taskset", "-c", CORE_LOAD, str(locust), "-f", str(Path(__file__).parent / "locustfile.py"),
           "--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{seconds}s",
           "--host", gateway.urls["proxy"], "--only-summary", "--exit-code-on-error", "0"]
    log(f"locust: {seconds} s headless against {gateway.urls['proxy']} ...")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 120)
    log((done.stdout + done.stderr).strip()[-6000:])
