"""Starting and stopping the real processes the integration tests talk to: the recording upstream
(`tests.support.upstream`) and the gateway (`python -m gateway serve`), on ephemeral ports of
127.0.0.1, with bounded waits everywhere and logs written to files the tests can read."""

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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

TESTS_DIR = Path(__file__).resolve().parents[1]
PROJECT_DIR = TESTS_DIR.parent

MARK = "x-test-mark"  # header the tests put on requests so they can find them upstream


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


def http_client(timeout: float = 10.0) -> httpx.Client:
    """httpx without environment proxies and without a cookie jar (nothing carries over)."""
    jar = http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.Client(trust_env=False, cookies=jar, timeout=timeout)


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment minus anything that would steer the gateway elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_")
        and k != "PROMETHEUS_MULTIPROC_DIR"
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _stop(proc: subprocess.Popen[Any], sig: int, timeout: float) -> int | None:
    """Signal a process we started (it leads its own session), wait, then make sure its whole
    process group is gone. Returns its exit status, or None if it had to be killed."""
    code: int | None = proc.poll()
    if code is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            code = None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (workers), if any
    return code


class Upstream:
    """A running `tests.support.upstream` process."""

    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / f"upstream-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        env = clean_env({"PYTHONPATH": str(PROJECT_DIR)})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.upstream"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=PROJECT_DIR,
            start_new_session=True,
        )
        try:
            ports = json.loads(_read_line(self.proc, 20.0))
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

    def records(self) -> list[dict[str, Any]]:
        response = self._control.get(f"http://127.0.0.1:{self.control_port}/requests")
        response.raise_for_status()
        records: list[dict[str, Any]] = response.json()
        return records

    def marked(self, mark: str) -> list[dict[str, Any]]:
        """The requests that arrived carrying `X-Test-Mark: mark`."""
        return [r for r in self.records() if [MARK, mark] in r["headers"]]

    def reset(self) -> None:
        self._control.post(f"http://127.0.0.1:{self.control_port}/reset").raise_for_status()

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM, 10)
        if self.proc.stdout:
            self.proc.stdout.close()
        if hasattr(self, "_control"):
            self._control.close()
        self._log.close()


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
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


def write_config(
    directory: Path, *, port: int, admin_port: int, policies: Sequence[Path | str], **extra: Any
) -> Path:
    """A complete config file for a gateway on 127.0.0.1:port (admin on admin_port).

    `extra` keys are merged in at the top level (`limits=...`, `reload=...`, ...).
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


def initialise(config_path: Path, env: dict[str, str] | None = None) -> None:
    """`gateway init --config FILE --if-needed` (contract §10): the store, master key and signing
    key that `gateway serve` needs."""
    command = [sys.executable, "-m", "gateway", "init", "--config", str(config_path), "--if-needed", "--json"]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        env=clean_env(env),
        cwd=config_path.parent,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"gateway init failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


class Gateway:
    """A running `gateway serve` process with its own config in `directory` (initialised first
    with `gateway init`)."""

    def __init__(
        self,
        directory: Path,
        policies: Sequence[Path | str],
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        ready_timeout: float = 30.0,
        **config: Any,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.log_path = directory / "gateway.log"
        for attempt in range(3):  # again on other ports if someone took ours meanwhile
            self.port, self.admin_port = two_free_ports()
            self.config_path = write_config(
                directory, port=self.port, admin_port=self.admin_port, policies=policies, **config
            )
            if attempt == 0:
                initialise(self.config_path, env)
            self._log = self.log_path.open("wb")
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gateway", "serve", "--config", str(self.config_path), *args],
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_env(env),
                cwd=directory,
                start_new_session=True,
            )
            if self._wait_ready(ready_timeout):
                break
            self._stop_quietly()
            if "cannot listen" not in self.log() or attempt == 2:
                raise RuntimeError(f"the gateway did not become ready:\n{self.log()}")
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_url = f"http://127.0.0.1:{self.admin_port}"
        self.pid = self.proc.pid

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with http_client(1.0) as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"http://127.0.0.1:{self.admin_port}/readyz").status_code == 200:
                        return True
                time.sleep(0.05)
        return False

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 5.0, start: int = 0) -> str:
        """The log from offset `start` once it contains `text`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[start:]
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the gateway log within {timeout}s:\n{log}")
            time.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def _stop_quietly(self) -> None:
        _stop(self.proc, signal.SIGTERM, 15)
        self._log.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        code = _stop(self.proc, sig, timeout)
        self._log.close()
        return code

    def worker_environ(self, name: str) -> set[str]:
        """The values of environment variable `name` the gateway's child processes were started
        with (Linux /proc), e.g. the metrics folder the supervisor hands its workers."""
        values = set()
        for child in children(self.pid):
            with contextlib.suppress(OSError):
                for entry in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                    key, _, value = entry.decode(errors="replace").partition("=")
                    if key == name:
                        values.add(value)
        return values


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


@contextlib.contextmanager
def running_gateway(directory: Path, policies: Sequence[Path | str], **kwargs: Any) -> Iterator[Gateway]:
    gateway = Gateway(directory, policies, **kwargs)
    try:
        yield gateway
    finally:
        gateway.stop()


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
