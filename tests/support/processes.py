"""Processes and plain HTTP for the suites that start real ones: the recording upstream
(`tests.support.upstream`), the environment and command a gateway runs with, and bounded waits.

Every wait here is bounded in time; every process is started in its own session so it (and its
workers) can be stopped by process group in teardown. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

TESTS_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = TESTS_DIR.parent
BIN = Path(sys.executable).parent

MARK = "x-test-mark"  # header the tests put on requests so they can find them upstream


def new_mark() -> str:
    """A value for X-Test-Mark that no other request carries."""
    return uuid.uuid4().hex


def gateway_command(*args: str) -> list[str]:
    """`gateway ARGS` as installed in this virtualenv (`python -m gateway` where the script is
    missing): the same code either way, the script is what a user runs."""
    script = BIN / "gateway"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "gateway", *args]


def free_port() -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def two_free_ports() -> tuple[int, int]:
    for _ in range(10):
        first, second = free_port(), free_port()
        if first != second:
            return first, second
    raise RuntimeError("no two distinct free ports")


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def http_client(timeout: float = 10.0, fresh: bool = False) -> httpx.Client:
    """httpx without environment proxies and without a cookie jar (nothing carries over from one
    request to the next); `fresh`: a new connection for every request, so that requests spread
    over the workers of a gateway instead of staying with the one that took the first."""
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()
    return httpx.Client(trust_env=False, cookies=jar, timeout=timeout, limits=limits)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment minus anything that would steer a gateway elsewhere (its own
    settings, a metrics folder, proxies), with the tree these tests belong to on PYTHONPATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_")
        and k != "PROMETHEUS_MULTIPROC_DIR"
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(PROJECT_DIR)
    env.update(extra or {})
    return env


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Signal a process we started (it leads its own session), wait, then make sure its whole
    process group is gone. Returns its exit status, or None if it had to be killed."""
    code: int | None = proc.poll()
    if code is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            code = None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (workers), if any
    return code


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    """The first line the process writes on stdout, without blocking past `timeout`."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (proc.poll() is not None and not sel.select(0)):
                raise RuntimeError("no line from the process")
            if sel.select(min(remaining, 0.5)):
                piece = os.read(proc.stdout.fileno(), 4096)
                if not piece:
                    raise RuntimeError("the process closed its stdout")
                buf += piece
    return buf.split(b"\n", 1)[0]


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc)."""
    out: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


def status_kib(pid: int, field: str) -> int:
    """A `VmHWM`/`VmRSS`-style field of /proc/PID/status, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def write_config(
    directory: Path, *, port: int, admin_port: int, policies: Sequence[Path | str], **extra: Any
) -> Path:
    """A complete config file for a gateway on 127.0.0.1:port (admin on admin_port).

    `extra` keys replace or add top-level keys (`store=...`, `limits=...`, `reload=...`, ...).
    """
    config: dict[str, Any] = {
        "public_url": f"http://127.0.0.1:{port}",
        "listen": f"127.0.0.1:{port}",
        "admin": {"listen": f"127.0.0.1:{admin_port}", "public_url": f"http://127.0.0.1:{admin_port}"},
        "store": f"sqlite:///{directory / 'gateway.db'}",
        "account_id": "test",
        "master_key_file": str(directory / "master.key"),
        "policies": [str(p) for p in policies],
        "reload": {"interval": "0.2s"},
        "shutdown_timeout": "10s",
        "log_level": "info",
    }
    config.update(extra)
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# --- the recording upstream ---------------------------------------------------------------------


class Upstream:
    """A running `tests.support.upstream` process: gateways are pointed at `url`; what reached it
    is read over its control port, which no gateway route can lead to. As a context manager it
    is stopped at the end of the block."""

    def __init__(self, log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"upstream-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.upstream"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            cwd=PROJECT_DIR,
            start_new_session=True,
        )
        try:
            ports = json.loads(read_line(self.proc, 20.0))
        except Exception:
            self.stop()
            raise RuntimeError(f"the upstream did not start:\n{self.log()}") from None
        self.port: int = ports["port"]
        self.control_port: int = ports["control_port"]
        self.url = f"http://127.0.0.1:{self.port}"
        self._control = http_client(10.0)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def records(self, **params: str) -> list[dict[str, Any]]:
        """Every request received so far, oldest first."""
        response = self._control.get(f"http://127.0.0.1:{self.control_port}/requests", params=params)
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def marked(self, mark: str) -> list[dict[str, Any]]:
        """The requests that arrived carrying `X-Test-Mark: mark` (the upstream picks them, the
        check here makes sure it did)."""
        return [r for r in self.records(mark=mark) if [MARK, mark] in r["headers"]]

    def with_path_part(self, part: str) -> list[dict[str, Any]]:
        """The requests with `part` anywhere in their path or query."""
        return [r for r in self.records() if part in r["raw_path"] or part in r["query"]]

    def reset(self) -> None:
        self._control.post(f"http://127.0.0.1:{self.control_port}/reset").raise_for_status()

    def __enter__(self) -> Upstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)
        if self.proc.stdout:
            self.proc.stdout.close()
        if hasattr(self, "_control"):
            self._control.close()
        self._log.close()
