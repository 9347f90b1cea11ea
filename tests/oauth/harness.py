"""Processes and HTTP helpers of the OAuth tests: the recording upstream, `gateway init` and
`gateway serve` on ephemeral ports of 127.0.0.1, a thin admin API client, and the metrics reader.

Every wait here is bounded in time; every process is started in its own session so that it (and
its workers) can be stopped by process group in teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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

PROJECT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GATEWAY = str(BIN / "gateway") if (BIN / "gateway").exists() else None
ACCOUNT = "oauthtest"
MARK = "x-test-mark"
API_AUDIENCE = "https://api.example.com"


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


def http(timeout: float = 10.0, fresh: bool = False) -> httpx.Client:
    """httpx without environment proxies; `fresh`: a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0) if fresh else httpx.Limits()
    return httpx.Client(trust_env=False, timeout=timeout, limits=limits)


def stop_process(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Signal a process we started (leader of its own session), wait, then kill what is left of
    its process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


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
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "upstream.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.oauth.upstream"],
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
            raise RuntimeError(f"the upstream did not start: {self.log_path.read_text()}") from None
        self.url = f"http://127.0.0.1:{self.port}"
        self._http = http()

    def marked(self, mark: str) -> list[dict[str, Any]]:
        response = self._http.get(f"{self.url}/__recorder/requests", params={"mark": mark})
        response.raise_for_status()
        return list(response.json())

    def paths(self) -> list[str]:
        """The path of every request recorded so far."""
        response = self._http.get(f"{self.url}/__recorder/requests")
        response.raise_for_status()
        return [r["path"] for r in response.json()]

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 10)
        if self.proc.stdout:
            self.proc.stdout.close()
        if hasattr(self, "_http"):
            self._http.close()
        self._log.close()


def header(record: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in record["headers"] if n == name.lower()]


def new_mark() -> str:
    return uuid.uuid4().hex


# --- the gateway --------------------------------------------------------------------------------

POLICY = """\
upstreams:
  api:
    url: {upstream}
    timeout: 10s
    connect_timeout: 2s
routes:
  - id: read-things
    match: GET /things
    upstream: api
    scopes: [things.read]
  - id: write-things
    match: POST /things
    upstream: api
    scopes: [things.write]
    audience: {audience}
  - id: whoami
    match: GET /whoami
    upstream: api
    authenticated: true
  - id: tokens-only
    match: GET /tokens-only
    upstream: api
    auth: [gateway_jwt]
    authenticated: true
"""


def write_policy(directory: Path, upstream_url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "routes.yaml"
    path.write_text(POLICY.format(upstream=upstream_url, audience=API_AUDIENCE))
    return path


class Gateway:
    """One gateway deployment: a config file in `directory`, a store and (once started) a
    `gateway serve` process. `public_url` may be given to run a second replica of a deployment
    (same issuer, same store, same master key) on ports of its own."""

    def __init__(
        self,
        directory: Path,
        store: str,
        policies: Sequence[Path],
        *,
        workers: int = 1,
        public_url: str | None = None,
        master_key_file: Path | None = None,
        **extra: Any,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.store = store
        self.policies = list(policies)
        self.workers = workers
        self.fixed_public_url = public_url
        self.master_key_file = master_key_file or directory / "master.key"
        self.extra = extra
        self.log_path = directory / "gateway.log"
        self.config_path = directory / "config.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.admin_key: str | None = None
        self.admin_id: str | None = None
        self._pick_ports()

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
            "master_key_file": str(self.master_key_file),
            "policies": [str(p) for p in self.policies],
            "log_level": "warning",
            "shutdown_timeout": "3s",
            "reload": {"interval": "0"},
        }
        config.update(self.extra)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    @property
    def public_url(self) -> str:
        return self.fixed_public_url or f"http://127.0.0.1:{self.port}"

    @property
    def proxy_url(self) -> str:
        """Where this process listens (differs from public_url for a second replica)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token_url(self) -> str:
        return f"{self.proxy_url}/oauth/token"

    # --- commands ---

    def run(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """`gateway ARGS --config CONFIG`."""
        return subprocess.run(
            [*gateway_command(*args), "--config", str(self.config_path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
        )

    def run_json(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.returncode == 0, f"gateway {' '.join(args)} failed: {result.stdout}\n{result.stderr}"
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def init(self) -> dict[str, Any]:
        data = self.run_json("init")
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
            if "cannot listen" not in self.log() and "address already in use" not in self.log().lower():
                break
        raise RuntimeError(f"the gateway did not become ready:\n{self.log()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        """Ready when admin /readyz answers 200 and, with several workers, when all of them run."""
        deadline = time.monotonic() + timeout
        seen_ok = 0
        with http(1.0, fresh=True) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.admin_url}/readyz").status_code == 200:
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

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def admin(self, key: str | None = None) -> Api:
        """The admin API as the first admin (default) or as another key or token."""
        return Api(self.admin_url, key or self.admin_key)

    # --- observations ---

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` on admin /metrics."""
        with http() as client:
            text = client.get(f"{self.admin_url}/metrics").text
        total = 0.0
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
            if not m or m.group(1) != name:
                continue
            found = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(m.group(3))
        return total

    def tokens_issued(self) -> float:
        return self.metric("gateway_tokens_issued_total")


# --- the admin API ------------------------------------------------------------------------------


class Api:
    """The admin API as one caller sees it."""

    def __init__(self, base: str, key: str | None) -> None:
        self.base = base.rstrip("/")
        self.key = key

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.key is not None:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        with http() as client:
            return client.request(method, self.base + path, headers=headers, **kwargs)

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

    def create_client(self, **body: Any) -> dict[str, Any]:
        body.setdefault("name", f"c-{uuid.uuid4().hex[:8]}")
        response = self.post("/v1/clients", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_key(self, client_id: str) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/access-keys")
        assert response.status_code == 201, response.text
        return dict(response.json())

    def create_secret(self, client_id: str) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/secrets")
        assert response.status_code == 201, response.text
        assert response.headers.get("cache-control") == "no-store"
        data = dict(response.json())
        assert data["clientSecret"].startswith("gwcs_"), data
        return data

    def add_public_key(self, client_id: str, **body: Any) -> dict[str, Any]:
        response = self.post(f"/v1/clients/{client_id}/public-keys", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def grant(self, client_id: str, actions: Sequence[str], resource: str) -> None:
        """A role with `actions` and a record giving it to `client_id` on `resource`."""
        role_id = f"role-{uuid.uuid4().hex[:10]}"
        response = self.post(
            "/v1/roles",
            json={
                "roleId": role_id,
                "name": role_id,
                "permissions": [
                    {"action": a, "allow": True, "grant": False, "delegate": False} for a in actions
                ],
            },
        )
        assert response.status_code == 201, response.text
        response = self.post(
            "/v1/records",
            json={
                "name": f"record-{role_id}",
                "users": [{"userId": client_id}],
                "statements": [{"roles": [role_id], "resources": [{"resourceUri": resource}]}],
            },
        )
        assert response.status_code == 201, response.text
