"""Processes and HTTP helpers for the identity tests: the recording upstream, `gateway init` and
`gateway serve` on ephemeral ports of 127.0.0.1, and a thin admin API client.

Every wait here is bounded in time; every process is started in its own session so it (and its
workers) can be stopped by process group in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GATEWAY = str(BIN / "gateway") if (BIN / "gateway").exists() else None
ACCOUNT = "idtest"
MARK = "x-test-mark"


def gateway_command(*args: str) -> list[str]:
    if GATEWAY is not None:
        return [GATEWAY, *args]
    return [sys.executable, "-m", "gateway", *args]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_")
        and k != "PROMETHEUS_MULTIPROC_DIR"
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(PROJECT)  # the gateway of the tree these tests belong to
    env.update(extra or {})
    return env


def client(timeout: float = 10.0, fresh: bool = False) -> httpx.Client:
    """httpx without environment proxies or cookies; `fresh`: a new connection per request."""
    limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()
    return httpx.Client(trust_env=False, timeout=timeout, limits=limits)


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Signal a process we started (leader of its own session), wait, then kill what is left of
    its process group."""
    code = proc.poll()
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
        os.killpg(proc.pid, signal.SIGKILL)
    return code


def read_line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    buf = b""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError("no line from the process in time")
            if sel.select(min(remaining, 0.5)):
                piece = os.read(proc.stdout.fileno(), 4096)
                if not piece:
                    raise RuntimeError("the process closed its stdout")
                buf += piece
            elif proc.poll() is not None:
                raise RuntimeError("the process exited")
    return buf.split(b"\n", 1)[0]


# --- the recording upstream ---------------------------------------------------------------------


class Recorder:
    def __init__(self, log_dir: Path) -> None:
        self.log_path = log_dir / "recorder.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.identity.recorder"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            cwd=PROJECT,
            start_new_session=True,
        )
        try:
            self.port: int = json.loads(read_line(self.proc, 20.0))["port"]
        except Exception:
            self.stop()
            raise RuntimeError(f"the recorder did not start: {self.log_path.read_text()}") from None
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = client()

    def records(self) -> list[dict[str, Any]]:
        response = self._http.get(f"{self.url}/__recorder/requests")
        response.raise_for_status()
        return list(response.json())

    def marked(self, mark: str) -> list[dict[str, Any]]:
        response = self._http.get(f"{self.url}/__recorder/requests", params={"mark": mark})
        response.raise_for_status()
        return [r for r in response.json() if [MARK, mark] in r["headers"]]

    def with_path_part(self, part: str) -> list[dict[str, Any]]:
        return [r for r in self.records() if part in r["raw_path"] or part in r["query"]]

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)
        if self.proc.stdout:
            self.proc.stdout.close()
        if hasattr(self, "_http"):
            self._http.close()
        self._log.close()


def header(record: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in record["headers"] if n.lower() == name.lower()]


# --- the gateway --------------------------------------------------------------------------------

POLICY = """\
upstreams:
  documents:
    url: {upstream}
    timeout: 10s
    connect_timeout: 2s
routes:
  - id: read-document
    match: GET /v1/users/{{userId}}/documents/{{docId}}
    upstream: documents
    permission: documents:read
    resource: /users/{{userId}}/documents/{{docId}}
  - id: whoami
    match: GET /whoami
    upstream: documents
    authenticated: true
  - id: health
    match: GET /health
    upstream: documents
    auth: none
"""


def write_policy(directory: Path, upstream_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "routes.yaml"
    path.write_text(POLICY.format(upstream=upstream_url))
    return path


class Gateway:
    """One gateway deployment: a config file in `directory`, a store, and (when started) a
    `gateway serve` process. Ports are picked afresh at every start."""

    def __init__(
        self,
        directory: Path,
        store: str,
        policies: Sequence[Path],
        *,
        workers: int = 1,
        log_level: str = "info",
        **extra: Any,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.store = store
        self.policies = list(policies)
        self.workers = workers
        self.log_level = log_level
        self.extra = extra
        self.log_path = directory / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = self.admin_port = 0
        self.config_path = directory / "config.yaml"
        self._pick_ports()
        self.admin_key: str | None = None
        self.admin_id: str | None = None

    def _pick_ports(self) -> None:
        self.port = free_port()
        self.admin_port = free_port()
        while self.admin_port == self.port:
            self.admin_port = free_port()
        config: dict[str, Any] = {
            "public_url": self.public_url,
            "listen": f"127.0.0.1:{self.port}",
            "admin": {"listen": f"127.0.0.1:{self.admin_port}", "public_url": self.admin_url},
            "store": self.store,
            "account_id": ACCOUNT,
            "master_key_file": str(self.directory / "master.key"),
            "policies": [str(p) for p in self.policies],
            "log_level": self.log_level,
            "shutdown_timeout": "5s",
            "reload": {"interval": "0"},
        }
        config.update(self.extra)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    # --- commands ---

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`gateway ARGS --config CONFIG` (the config is added when not given)."""
        command = gateway_command(*args)
        if "--config" not in args:
            command += ["--config", str(self.config_path)]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
        )

    def init(self) -> dict[str, Any]:
        result = self.run("init", "--json")
        assert result.returncode == 0, f"gateway init failed: {result.stdout}\n{result.stderr}"
        data: dict[str, Any] = json.loads(result.stdout)
        self.admin_key = data["accessKey"]
        self.admin_id = data["clientId"]
        return data

    # --- serve ---

    def start(self, timeout: float = 40.0) -> None:
        for attempt in range(3):
            if attempt:
                self._pick_ports()
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                gateway_command("serve", "--config", str(self.config_path), "--workers", str(self.workers)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_env(),
                cwd=self.directory,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready(timeout):
                return
            stop_process(self.proc)
            if "cannot listen" not in self.log():
                break
        raise RuntimeError(f"the gateway did not become ready:\n{self.log()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        """Ready when /readyz answers 200 and, with several workers, when every worker does (a
        request answered while one worker still starts would prove nothing about it)."""
        deadline = time.monotonic() + timeout
        seen_ok = 0
        with client(1.0, fresh=True) as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if http.get(f"{self.admin_url}/readyz").status_code == 200:
                        seen_ok += 1
                        if self.workers == 1 or (len(self.worker_pids()) >= self.workers and seen_ok >= 3):
                            return True
                time.sleep(0.05)
        return False

    def worker_pids(self) -> list[int]:
        if self.proc is None:
            return []
        out: list[int] = []
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{self.proc.pid}/task").iterdir():
                out += [int(p) for p in (task / "children").read_text().split()]
        return out

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        code = stop_process(self.proc)
        self.proc = None
        return code

    def kill9(self) -> None:
        """SIGKILL the whole gateway: the supervisor and every worker, no chance to flush."""
        assert self.proc is not None
        pids = [self.proc.pid, *self.worker_pids()]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def admin(self, key: Any = "admin") -> Api:
        """The admin API as the first admin (default), as another key, or anonymously (None)."""
        return Api(self.admin_url, self.admin_key if key == "admin" else key)


# --- the admin API ------------------------------------------------------------------------------


class Api:
    """The admin API as one caller sees it (`key`: an access key or a token; None: anonymous)."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base = base.rstrip("/")
        self.key = key
        self.http = client()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        return self.http.request(method, self.base + path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # --- shortcuts that assert success ---

    def create_client(self, name: str | None = None, **body: Any) -> dict[str, Any]:
        response = self.post("/v1/clients", json={"name": name or f"c-{uuid.uuid4().hex[:8]}", **body})
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_key(self, client_id: str) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/access-keys")
        assert response.status_code == 201, response.text
        return dict(response.json())

    def new_client_with_key(self, **body: Any) -> tuple[str, str]:
        created = self.create_client(**body)
        return created["clientId"], self.create_key(created["clientId"])["accessKey"]

    def create_role(self, actions: Sequence[str], *, grant: bool = False, role_id: str | None = None) -> str:
        role_id = role_id or f"role-{uuid.uuid4().hex[:10]}"
        response = self.post(
            "/v1/roles",
            json={
                "roleId": role_id,
                "name": role_id,
                "permissions": [
                    {"action": a, "allow": True, "grant": grant, "delegate": False} for a in actions
                ],
            },
        )
        assert response.status_code == 201, response.text
        return role_id

    def create_record(
        self,
        users: Sequence[str],
        roles: Sequence[str],
        resources: Sequence[str],
        record_id: str | None = None,
    ) -> str:
        record_id = record_id or f"rec-{uuid.uuid4().hex[:10]}"
        response = self.post("/v1/records", json=record_body(users, roles, resources, record_id))
        assert response.status_code == 201, response.text
        return record_id

    def grant(
        self, client_id: str, actions: Sequence[str], resources: Sequence[str], grant: bool = False
    ) -> tuple[str, str]:
        role_id = self.create_role(actions, grant=grant)
        return role_id, self.create_record([client_id], [role_id], resources)

    def close(self) -> None:
        self.http.close()


def record_body(
    users: Sequence[str], roles: Sequence[str], resources: Sequence[str], record_id: str
) -> dict[str, Any]:
    return {
        "recordId": record_id,
        "name": record_id,
        "users": [{"userId": u} for u in users],
        "statements": [{"roles": list(roles), "resources": [{"resourceUri": r} for r in resources]}],
    }


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> tuple[bool, float]:
    """Poll `predicate` until it is true or `timeout` passes; (it became true, seconds taken)."""
    started = time.monotonic()
    while True:
        if predicate():
            return True, time.monotonic() - started
        if time.monotonic() - started > timeout:
            return False, time.monotonic() - started
        time.sleep(interval)


@contextlib.contextmanager
def serving(gateway: Gateway) -> Iterator[Gateway]:
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()
