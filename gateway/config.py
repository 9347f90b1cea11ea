"""The gateway's config file (contract §1), validated once at start.

Every problem is reported as `FILE: KEY: why`, so an operator can fix it without reading code.
Environment variables override addresses and secrets (see `ENV_OVERRIDES`), which is how
containers and several replicas are usually configured.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

# Listen and StoreURL (the types of two Config fields) are imported from here too.
from gateway.config_schema import (
    Listen as Listen,
)
from gateway.config_schema import (
    Reader,
    boolean,
    count,
    declared,
    file_path,
    file_paths,
    key_prefix,
    limiter_backend,
    log_level,
    networks,
    one_of,
    parse_listen,
    parse_store,
    parse_url,
    positive_int,
    positive_seconds,
    read_section,
    read_values,
    revocation_bound,
    seconds_between,
    setting,
)
from gateway.config_schema import (
    StoreURL as StoreURL,
)
from gateway.errors import ConfigError
from gateway.units import parse_duration, parse_size

ACCOUNT_ID = re.compile(r"^[A-Za-z0-9]{1,40}$")

#: environment variable → config key it overrides (dotted for nested keys)
ENV_OVERRIDES = {
    "GATEWAY_PUBLIC_URL": "public_url",
    "GATEWAY_LISTEN": "listen",
    "GATEWAY_ADMIN_LISTEN": "admin.listen",
    "GATEWAY_ADMIN_PUBLIC_URL": "admin.public_url",
    "GATEWAY_DECISIONS_LISTEN": "decisions.listen",
    "GATEWAY_STORE": "store",
    "GATEWAY_ACCOUNT_ID": "account_id",
    "GATEWAY_MASTER_KEY_FILE": "master_key_file",
    "GATEWAY_WORKERS": "workers",
    "GATEWAY_RATE_LIMITS_BACKEND": "rate_limits.backend",
}


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = setting(16 * 1024, parse_size)
    max_headers: int = setting(100, positive_int)
    max_body_bytes: int = setting(1024**3, parse_size)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a caller may take over its request (the upstream's own timeouts are in the policy)."""

    header: float = setting(10.0, positive_seconds)  # from a request's first byte to the end of its head
    keepalive: float = setting(5.0, positive_seconds)  # an idle keep-alive connection between requests
    body_idle: float = setting(10.0, positive_seconds)  # the longest pause inside a request body
    body_min_rate: float = setting(1024.0, parse_size)  # bytes/s a body must average after body_idle; 0: off


@dataclass(frozen=True, slots=True)
class Tokens:
    algorithm: str = setting(
        "EdDSA", one_of("EdDSA", "ES256", "RS256", message="expected EdDSA, ES256 or RS256")
    )
    # the default access token lifetime; a client's tokenLifetime overrides it
    lifetime: float = setting(3600.0, seconds_between(60, 86400))
    # cap on client-signed JWTs (exp - iat) and on tokenLifetime
    max_lifetime: float = setting(86400.0, seconds_between(60, 7 * 86400))
    leeway: float = setting(30.0, seconds_between(0, 300))
    rotation_interval: float = setting(30 * 86400.0, seconds_between(3600, 365 * 86400))
    jwks_max_age: float = setting(300.0, seconds_between(0, 86400))
    # private_key_jwt assertions (Authlib signs them for 1 h)
    assertion_max_lifetime: float = setting(3600.0, seconds_between(10, 86400))


@dataclass(frozen=True, slots=True)
class Caches:
    credentials: int = setting(
        100_000, count
    )  # verified credentials kept (by hash); 0 verifies every request
    # the longest a verification is reused (revocation is faster)
    credential_ttl: float = setting(300.0, seconds_between(0, 86400))


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    # failed client authentications per client id and address, a minute
    failures_per_client: int = setting(10, positive_int)
    # failed client authentications per source address, a minute
    failures_per_address: int = setting(50, positive_int)


@dataclass(frozen=True, slots=True)
class Usage:
    # how often each worker writes its batch of usage counts
    flush_interval: float = setting(5.0, seconds_between(0.1, 300))


@dataclass(frozen=True, slots=True)
class RateLimits:
    # "local" (per process) or a redis:// / rediss:// / unix:// URL
    backend: str = setting("local", limiter_backend)
    # when Redis cannot be reached: fail_closed or fail_open
    failure_mode: str = setting("fail_closed", one_of("fail_closed", "fail_open"))
    # Redis keys; several deployments may share one Redis
    key_prefix: str = setting("gateway:rl:", key_prefix)
    timeout: float = setting(0.25, seconds_between(0.01, 10))  # one Redis round trip, at most


@dataclass(frozen=True, slots=True)
class Decisions:
    """The forward-auth decision endpoint (contract §4): always on the admin listener, and on a
    listener of its own when `listen` is set; a 200 may be cached by the front proxy for
    `cache_max_age` seconds (at most the 1 s revocation bound; 0 turns caching off)."""

    listen: Listen | None = setting(None, lambda value: parse_listen(value))
    cache_max_age: int = setting(1, revocation_bound)


@dataclass(frozen=True, slots=True)
class Jwks:
    """Fetching the keys of trusted external issuers (contract §5; gateway/identity/jwks.py)."""

    timeout: float = setting(5.0, seconds_between(0.1, 60))  # the whole fetch, discovery included
    # a JWKS (or discovery document) larger than this is refused
    max_bytes: int = setting(512 * 1024, parse_size)
    max_keys: int = setting(100, positive_int)
    # Cache-Control max-age is clamped to [min_age, max_age]
    min_age: float = setting(60.0, seconds_between(1, 86400))
    max_age: float = setting(86400.0, seconds_between(1, 7 * 86400))
    # keys keep working this long past max-age while the issuer is down
    stale_for: float = setting(86400.0, seconds_between(0, 30 * 86400))
    # at most one fetch per issuer this often (unknown kid, failure)
    refetch_interval: float = setting(30.0, seconds_between(0.1, 3600))
    # CA bundle for issuers with a private CA (a cluster's); default: the system's
    ca_file: Path | None = setting(None, file_path, relative_path=True)


@dataclass(frozen=True, slots=True)
class Console:
    enabled: bool = setting(True, boolean)  # the web console at {admin.public_url}/console/
    # absolute; 8 h at most (contract §12)
    session_lifetime: float = setting(8 * 3600.0, seconds_between(60, 8 * 3600))


@dataclass(frozen=True, slots=True)
class VaultSettings:
    # each call to a provider; a refresh holds its credential's lock this long at most
    provider_timeout: float = setting(5.0, seconds_between(0.1, 30))
    connections: tuple[Any, ...] = ()  # gateway.vault_models.Connection, from `vault.connections`


@dataclass(frozen=True, slots=True)
class Config:
    source: Path
    public_url: str
    listen: Listen
    admin_listen: Listen
    admin_public_url: str
    store: StoreURL
    account_id: str
    master_key_file: Path | None
    policies: tuple[Path, ...]
    workers: int = setting(1, positive_int)
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = setting((), networks)
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
    tokens: Tokens = field(default_factory=Tokens)
    caches: Caches = field(default_factory=Caches)
    throttle: ThrottleLimits = field(default_factory=ThrottleLimits)
    usage: Usage = field(default_factory=Usage)
    rate_limits: RateLimits = field(default_factory=RateLimits)
    decisions: Decisions = field(default_factory=Decisions)
    jwks: Jwks = field(default_factory=Jwks)
    # Trusted identities from the config file (read-only; the admin API's shape), as written:
    # the runtime validates them (runtime.configured_identities).
    identities: tuple[dict[str, Any], ...] = ()
    console: Console = field(default_factory=Console)
    vault: VaultSettings = field(default_factory=VaultSettings)
    previous_master_keys: tuple[Path, ...] = setting((), file_paths("master key files"), relative_path=True)
    reload_interval: float = setting(1.0, parse_duration, key="reload.interval")
    shutdown_timeout: float = setting(30.0, parse_duration)
    log_level: str = setting("info", log_level)
    access_log: bool = setting(False, boolean)

    @property
    def public_base_path(self) -> str:
        """The path of `public_url` without a trailing `/`: where the gateway's own endpoints live."""
        return urlsplit(self.public_url).path.rstrip("/")


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


_TOP = {
    "public_url",
    "listen",
    "admin",
    "store",
    "account_id",
    "master_key_file",
    "policies",
    "workers",
    "trusted_proxies",
    "limits",
    "timeouts",
    "reload",
    "shutdown_timeout",
    "log_level",
    "access_log",
    "tokens",
    "throttle",
    "caches",
    "usage",
    "rate_limits",
    "decisions",
    "jwks",
    "identities",
    "console",
    "vault",
    "previous_master_keys",
}


# The sections read declaratively (every key declared with `setting` on its dataclass).
_SECTIONS: dict[str, type] = {
    "limits": Limits,
    "timeouts": Timeouts,
    "tokens": Tokens,
    "throttle": ThrottleLimits,
    "caches": Caches,
    "usage": Usage,
    "rate_limits": RateLimits,
    "decisions": Decisions,
    "jwks": Jwks,
    "console": Console,
}


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Load, override from the environment, and validate. Raises ConfigError listing every problem."""
    source = Path(path)
    env = os.environ if environ is None else environ
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{source}: not valid YAML{where}") from None
    if raw is None:
        raw = {}
    r = Reader(source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys at the top level")
    for var, key in ENV_OVERRIDES.items():
        if env.get(var):
            _set(raw, key, env[var])
    if env.get("GATEWAY_MASTER_KEY"):
        raw.setdefault("master_key_file", None)
    base = source.resolve().parent
    top = r.mapping(raw, "", _TOP)
    admin = r.mapping(top.get("admin"), "admin", {"listen", "public_url"})
    r.mapping(top.get("reload"), "reload", {"interval"})
    required = r.required
    public_url = required("public_url", top.get("public_url"), parse_url)
    listen = required("listen", top.get("listen"), parse_listen)
    admin_listen = required("admin.listen", admin.get("listen"), parse_listen)
    admin_public_url = required("admin.public_url", admin.get("public_url"), parse_url)
    store = required("store", top.get("store"), lambda v: parse_store(v, base))

    def account(value: object) -> str:
        if not isinstance(value, str) or not ACCOUNT_ID.match(value):
            raise ValueError("expected 1 to 40 letters and digits")
        return value

    account_id = required("account_id", top.get("account_id"), account)
    master_key_file: Path | None = None
    if top.get("master_key_file") is not None:
        mk = top["master_key_file"]
        if isinstance(mk, str) and mk:
            master_key_file = (base / mk).resolve()
        else:
            r.fail("master_key_file", "expected a file path")
    elif not env.get("GATEWAY_MASTER_KEY"):
        r.fail("master_key_file", "required key is missing (or set GATEWAY_MASTER_KEY)")

    def policy_paths(value: object) -> tuple[Path, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(i, str) and i for i in items):
            raise ValueError("expected a list of policy files and folders")
        return tuple((base / i).resolve() for i in items)

    policies = required("policies", top.get("policies"), policy_paths)
    sections: dict[str, Any] = {
        name: read_section(r, top.get(name), name, cls) for name, cls in _SECTIONS.items()
    }
    identities = _identities(r, top.get("identities"))
    vault = _vault(r, top.get("vault"))
    top_level = read_values(r, top, "", declared(Config))
    if r.problems:
        raise ConfigError("\n".join(r.problems))
    return Config(
        source=source.resolve(),
        public_url=public_url,
        listen=listen,
        admin_listen=admin_listen,
        admin_public_url=admin_public_url,
        store=store,
        account_id=account_id,
        master_key_file=master_key_file,
        policies=policies,
        identities=identities,
        vault=vault,
        **sections,
        **top_level,
    )


def _identities(r: Reader, raw: object) -> tuple[dict[str, Any], ...]:
    """`identities:`: a list of trusted identities in the admin API's shape, each with its
    `identityId`. Their fields are validated by the runtime (gateway.identity.trusted, a layer
    above this one), with the same `FILE: identities[N].FIELD: why` messages."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        r.fail("identities", "expected a list of trusted identities (see config.example.yaml)")
        return ()
    entries: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            r.fail(
                f"identities[{i}]",
                "expected a mapping (identityId, issuer, audience, conditions, clientId, ...)",
            )
        elif item.get("identityId") is None:
            r.fail(f"identities[{i}].identityId", "required in the config file")
        else:
            entries.append(item)
    return tuple(entries)


_CONNECTION_KEYS = {
    "connection_id": "connectionId",
    "name": "name",
    "authorization_url": "authorizationUrl",
    "token_url": "tokenUrl",
    "revocation_url": "revocationUrl",
    "client_id": "clientId",
    "client_secret_env": "clientSecretEnv",
    "token_endpoint_auth_method": "tokenEndpointAuthMethod",
    "scopes": "scopes",
    "resource_template": "resourceTemplate",
    "allowed_redirects": "allowedRedirects",
    "authorization_params": "authorizationParams",
}


def _vault(r: Reader, data: Any) -> VaultSettings:
    """`vault:`: settings and the connections defined in the file (snake_case keys; the client
    secret only by environment variable, so no secret sits in the config file)."""
    from gateway.errors import InvalidRequest
    from gateway.vault_models import connection_from

    raw = r.mapping(data, "vault", {"provider_timeout", "connections"})
    settings = VaultSettings(**read_values(r, raw, "vault", declared(VaultSettings)))
    items = raw.get("connections") or []
    if not isinstance(items, list):
        r.fail("vault.connections", "expected a list of connections")
        items = []
    connections = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"vault.connections[{i}]"
        entry = r.mapping(item, where, set(_CONNECTION_KEYS))
        body = {_CONNECTION_KEYS[k]: v for k, v in entry.items() if k in _CONNECTION_KEYS}
        try:
            connection, _ = connection_from(body, None, source="config")
        except InvalidRequest as exc:
            field_name, _, why = exc.description.partition(": ")
            snake = next(
                (k for k, v in _CONNECTION_KEYS.items() if v == field_name.split("[")[0]), field_name
            )
            r.fail(f"{where}.{snake}", why)
            continue
        if connection.connection_id in seen:
            r.fail(f"{where}.connection_id", "defined twice")
        seen.add(connection.connection_id)
        connections.append(connection)
    return replace(settings, connections=tuple(connections))
