"""The gateway's config file (contract §1), validated once at start.

Every problem is reported as `FILE: KEY: why`, so an operator can fix it without reading code.
Environment variables override addresses and secrets (see `ENV_OVERRIDES`), which is how
containers and several replicas are usually configured.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

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
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class StoreURL:
    scheme: str  # "sqlite" or "postgresql"
    url: str  # as written, for PostgreSQL the libpq connection string
    path: Path | None = None  # the SQLite file


@dataclass(frozen=True, slots=True)
class Limits:
    max_header_bytes: int = 16 * 1024
    max_headers: int = 100
    max_body_bytes: int = 1024**3


@dataclass(frozen=True, slots=True)
class Timeouts:
    """How long a caller may take over its request (the upstream's own timeouts are in the policy)."""

    header: float = 10.0  # from the first byte of a request to the end of its head (slowloris)
    keepalive: float = 5.0  # an idle keep-alive connection between requests
    body_idle: float = 10.0  # the longest pause inside a request body
    body_min_rate: float = 1024.0  # bytes/s a body must average once body_idle has passed; 0: off


@dataclass(frozen=True, slots=True)
class Tokens:
    algorithm: str = "EdDSA"  # EdDSA, ES256 or RS256
    lifetime: float = 3600.0  # default access token lifetime; a client's tokenLifetime overrides
    max_lifetime: float = 86400.0  # cap on client-signed JWTs (exp - iat) and on tokenLifetime
    leeway: float = 30.0
    rotation_interval: float = 30 * 86400.0
    jwks_max_age: float = 300.0
    assertion_max_lifetime: float = 3600.0  # private_key_jwt assertions (Authlib signs them for 1 h)


@dataclass(frozen=True, slots=True)
class Caches:
    credentials: int = 100_000  # verified credentials kept (by hash); 0 verifies every request
    credential_ttl: float = 300.0  # the longest a verification is reused (revocation is faster)


@dataclass(frozen=True, slots=True)
class ThrottleLimits:
    failures_per_client: int = 10  # failed client authentications per client id and address, a minute
    failures_per_address: int = 50  # failed client authentications per source address, a minute


@dataclass(frozen=True, slots=True)
class Usage:
    flush_interval: float = 5.0  # how often each worker writes its batch of usage counts


@dataclass(frozen=True, slots=True)
class RateLimits:
    backend: str = "local"  # "local" (per process) or a redis:// / rediss:// / unix:// URL
    failure_mode: str = "fail_closed"  # when Redis cannot be reached: fail_closed or fail_open
    key_prefix: str = "gateway:rl:"  # Redis keys; several deployments may share one Redis
    timeout: float = 0.25  # one Redis round trip, at most


@dataclass(frozen=True, slots=True)
class Decisions:
    """The forward-auth decision endpoint (contract §4): always on the admin listener, and on a
    listener of its own when `listen` is set; a 200 may be cached by the front proxy for
    `cache_max_age` seconds (at most the 1 s revocation bound; 0 turns caching off)."""

    listen: Listen | None = None
    cache_max_age: int = 1


@dataclass(frozen=True, slots=True)
class Jwks:
    """Fetching the keys of trusted external issuers (contract §5; gateway/identity/jwks.py)."""

    timeout: float = 5.0  # the whole fetch, discovery included
    max_bytes: int = 512 * 1024  # a JWKS (or discovery document) larger than this is refused
    max_keys: int = 100
    min_age: float = 60.0  # Cache-Control max-age is clamped to [min_age, max_age]
    max_age: float = 86400.0
    stale_for: float = 86400.0  # keys keep working this long past max-age while the issuer is down
    refetch_interval: float = 30.0  # at most one fetch per issuer this often (unknown kid, failure)
    ca_file: Path | None = None  # CA bundle for issuers with a private CA (a cluster's); default: system


@dataclass(frozen=True, slots=True)
class Console:
    enabled: bool = True  # the web console at {admin.public_url}/console/
    session_lifetime: float = 8 * 3600.0  # absolute; 8 h at most (contract §12)


@dataclass(frozen=True, slots=True)
class VaultSettings:
    provider_timeout: float = (
        5.0  # each call to a provider; a refresh holds its credential's lock this long at most
    )
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
    workers: int = 1
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
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
    previous_master_keys: tuple[Path, ...] = ()
    reload_interval: float = 1.0
    shutdown_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False

    @property
    def public_base_path(self) -> str:
        """The path of `public_url` without a trailing `/`: where the gateway's own endpoints live."""
        return urlsplit(self.public_url).path.rstrip("/")


class _Reader:
    """Reads typed values out of nested YAML mappings, collecting every problem with its key."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.problems: list[str] = []

    def fail(self, key: str, why: str) -> None:
        self.problems.append(f"{self.source}: {key}: {why}")

    def mapping(self, data: Any, key: str, known: set[str]) -> dict[str, Any]:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail(key or "(top level)", "expected a mapping of keys to values")
            return {}
        for name in data:
            if name not in known:
                where = f"{key}.{name}" if key else str(name)
                self.fail(where, "unknown key (see config.example.yaml for the options)")
        return data


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[last] = value


def parse_listen(value: object) -> Listen:
    if not isinstance(value, str):
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:8080")
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", value.strip())
    if not m:
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:8080")
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if not 0 <= port <= 65535:
        raise ValueError("port must be 0-65535")
    return Listen(host, port)


def _parse_url(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("expected an http:// or https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not have a query or fragment")
    return value.rstrip("/") if parts.path not in ("", "/") else f"{parts.scheme}://{parts.netloc}"


def parse_store(value: object, base: Path) -> StoreURL:
    """`sqlite:///ABSOLUTE/PATH`, `sqlite:///./RELATIVE` or `sqlite:RELATIVE` (relative to the
    config file), or `postgresql://…` (a libpq URL)."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB")
    if value.startswith(("postgresql://", "postgres://")):
        return StoreURL("postgresql", value)
    if value.startswith("sqlite:"):
        rest = value.removeprefix("sqlite:")
        if rest.startswith("//"):
            rest = rest[2:]
            if rest.startswith(("/./", "/../")):
                rest = rest[1:]
        if not rest or rest == "/":
            raise ValueError("names no database file")
        path = Path(rest)
        return StoreURL("sqlite", value, path if path.is_absolute() else (base / path).resolve())
    raise ValueError("expected sqlite:///PATH or postgresql://USER@HOST:PORT/DB")


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
    r = _Reader(source)
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
    limits_raw = r.mapping(top.get("limits"), "limits", {"max_header_bytes", "max_headers", "max_body_bytes"})
    reload_raw = r.mapping(top.get("reload"), "reload", {"interval"})
    timeouts_raw = r.mapping(
        top.get("timeouts"), "timeouts", {"header", "keepalive", "body_idle", "body_min_rate"}
    )
    tokens_raw = r.mapping(
        top.get("tokens"),
        "tokens",
        {
            "algorithm",
            "lifetime",
            "max_lifetime",
            "leeway",
            "rotation_interval",
            "jwks_max_age",
            "assertion_max_lifetime",
        },
    )
    throttle_raw = r.mapping(top.get("throttle"), "throttle", {"failures_per_client", "failures_per_address"})
    caches_raw = r.mapping(top.get("caches"), "caches", {"credentials", "credential_ttl"})
    decisions_raw = r.mapping(top.get("decisions"), "decisions", {"listen", "cache_max_age"})
    console_raw = r.mapping(top.get("console"), "console", {"enabled", "session_lifetime"})

    def required(key: str, value: Any, parse: Any) -> Any:
        if value is None:
            r.fail(key, "required key is missing")
            return None
        try:
            return parse(value)
        except ValueError as exc:
            r.fail(key, str(exc))
            return None

    def optional(key: str, value: Any, parse: Any, default: Any) -> Any:
        return default if value is None else required(key, value, parse)

    public_url = required("public_url", top.get("public_url"), _parse_url)
    listen = required("listen", top.get("listen"), parse_listen)
    admin_listen = required("admin.listen", admin.get("listen"), parse_listen)
    admin_public_url = required("admin.public_url", admin.get("public_url"), _parse_url)
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

    def positive_int(value: object) -> int:
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError("expected a whole number of at least 1")
        return value

    def networks(value: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        if not isinstance(value, list):
            raise ValueError("expected a list of addresses or CIDR ranges")
        try:
            return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
        except ValueError:
            raise ValueError("expected a list of addresses or CIDR ranges") from None

    def log_level(value: object) -> str:
        if value not in ("critical", "error", "warning", "info", "debug"):
            raise ValueError("expected one of critical, error, warning, info, debug")
        return str(value)

    def boolean(value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value

    defaults = Limits()
    limits = Limits(
        max_header_bytes=optional(
            "limits.max_header_bytes",
            limits_raw.get("max_header_bytes"),
            parse_size,
            defaults.max_header_bytes,
        ),
        max_headers=optional(
            "limits.max_headers", limits_raw.get("max_headers"), positive_int, defaults.max_headers
        ),
        max_body_bytes=optional(
            "limits.max_body_bytes", limits_raw.get("max_body_bytes"), parse_size, defaults.max_body_bytes
        ),
    )

    def positive_seconds(value: object) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            raise ValueError("expected a duration above 0s")
        return seconds

    tod = Timeouts()
    timeouts = Timeouts(
        header=optional("timeouts.header", timeouts_raw.get("header"), positive_seconds, tod.header),
        keepalive=optional(
            "timeouts.keepalive", timeouts_raw.get("keepalive"), positive_seconds, tod.keepalive
        ),
        body_idle=optional(
            "timeouts.body_idle", timeouts_raw.get("body_idle"), positive_seconds, tod.body_idle
        ),
        body_min_rate=optional(
            "timeouts.body_min_rate", timeouts_raw.get("body_min_rate"), parse_size, tod.body_min_rate
        ),
    )

    def algorithm(value: object) -> str:
        if value not in ("EdDSA", "ES256", "RS256"):
            raise ValueError("expected EdDSA, ES256 or RS256")
        return str(value)

    def seconds_between(low: float, high: float) -> Any:
        def parse(value: object) -> float:
            seconds = parse_duration(value)
            if not low <= seconds <= high:
                raise ValueError(f"expected a duration from {low:g}s to {high:g}s")
            return seconds

        return parse

    td = Tokens()
    tokens = Tokens(
        algorithm=optional("tokens.algorithm", tokens_raw.get("algorithm"), algorithm, td.algorithm),
        lifetime=optional(
            "tokens.lifetime", tokens_raw.get("lifetime"), seconds_between(60, 86400), td.lifetime
        ),
        max_lifetime=optional(
            "tokens.max_lifetime",
            tokens_raw.get("max_lifetime"),
            seconds_between(60, 7 * 86400),
            td.max_lifetime,
        ),
        leeway=optional("tokens.leeway", tokens_raw.get("leeway"), seconds_between(0, 300), td.leeway),
        rotation_interval=optional(
            "tokens.rotation_interval",
            tokens_raw.get("rotation_interval"),
            seconds_between(3600, 365 * 86400),
            td.rotation_interval,
        ),
        jwks_max_age=optional(
            "tokens.jwks_max_age", tokens_raw.get("jwks_max_age"), seconds_between(0, 86400), td.jwks_max_age
        ),
        assertion_max_lifetime=optional(
            "tokens.assertion_max_lifetime",
            tokens_raw.get("assertion_max_lifetime"),
            seconds_between(10, 86400),
            td.assertion_max_lifetime,
        ),
    )
    thd = ThrottleLimits()
    throttle = ThrottleLimits(
        failures_per_client=optional(
            "throttle.failures_per_client",
            throttle_raw.get("failures_per_client"),
            positive_int,
            thd.failures_per_client,
        ),
        failures_per_address=optional(
            "throttle.failures_per_address",
            throttle_raw.get("failures_per_address"),
            positive_int,
            thd.failures_per_address,
        ),
    )

    def count(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("expected a whole number, 0 or more")
        return value

    cd = Caches()
    caches = Caches(
        credentials=optional("caches.credentials", caches_raw.get("credentials"), count, cd.credentials),
        credential_ttl=optional(
            "caches.credential_ttl",
            caches_raw.get("credential_ttl"),
            seconds_between(0, 86400),
            cd.credential_ttl,
        ),
    )
    usage_raw = r.mapping(top.get("usage"), "usage", {"flush_interval"})
    usage = Usage(
        flush_interval=optional(
            "usage.flush_interval", usage_raw.get("flush_interval"), seconds_between(0.1, 300), 5.0
        )
    )
    rl_raw = r.mapping(
        top.get("rate_limits"), "rate_limits", {"backend", "failure_mode", "key_prefix", "timeout"}
    )
    rld = RateLimits()

    def one_of(*choices: str) -> Any:
        def parse(value: object) -> str:
            if value not in choices:
                raise ValueError(f"expected one of {', '.join(choices)}")
            return str(value)

        return parse

    def limiter_backend(value: object) -> str:
        if value == "local":
            return "local"
        if (
            isinstance(value, str)
            and urlsplit(value).scheme in ("redis", "rediss", "unix")
            and len(value) > 8
        ):
            return value
        raise ValueError("expected local or a redis:// URL (redis://HOST:PORT/DB)")

    def prefix(value: object) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9:_.-]{1,64}", value):
            raise ValueError("expected 1 to 64 letters, digits and : _ . -")
        return value

    rate_limits = RateLimits(
        backend=optional("rate_limits.backend", rl_raw.get("backend"), limiter_backend, rld.backend),
        failure_mode=optional(
            "rate_limits.failure_mode",
            rl_raw.get("failure_mode"),
            one_of("fail_closed", "fail_open"),
            rld.failure_mode,
        ),
        key_prefix=optional("rate_limits.key_prefix", rl_raw.get("key_prefix"), prefix, rld.key_prefix),
        timeout=optional(
            "rate_limits.timeout", rl_raw.get("timeout"), seconds_between(0.01, 10), rld.timeout
        ),
    )

    def revocation_bound(value: object) -> int:
        # max-age is whole seconds (RFC 9111 §5.2.2.1), and no cached decision may outlive the
        # 1 s revocation bound: so 0 or 1.
        seconds = parse_duration(value)
        if seconds not in (0, 1):
            raise ValueError("expected 0s (no caching) or 1s (the revocation bound)")
        return int(seconds)

    decisions = Decisions(
        listen=optional("decisions.listen", decisions_raw.get("listen"), parse_listen, None),
        cache_max_age=optional(
            "decisions.cache_max_age", decisions_raw.get("cache_max_age"), revocation_bound, 1
        ),
    )
    jwks_raw = r.mapping(
        top.get("jwks"),
        "jwks",
        {
            "timeout",
            "max_bytes",
            "max_keys",
            "min_age",
            "max_age",
            "stale_for",
            "refetch_interval",
            "ca_file",
        },
    )
    jd = Jwks()
    ca_file = jwks_raw.get("ca_file")
    if ca_file is not None and not (isinstance(ca_file, str) and ca_file):
        r.fail("jwks.ca_file", "expected a file path")
        ca_file = None
    jwks = Jwks(
        timeout=optional("jwks.timeout", jwks_raw.get("timeout"), seconds_between(0.1, 60), jd.timeout),
        max_bytes=optional("jwks.max_bytes", jwks_raw.get("max_bytes"), parse_size, jd.max_bytes),
        max_keys=optional("jwks.max_keys", jwks_raw.get("max_keys"), positive_int, jd.max_keys),
        min_age=optional("jwks.min_age", jwks_raw.get("min_age"), seconds_between(1, 86400), jd.min_age),
        max_age=optional("jwks.max_age", jwks_raw.get("max_age"), seconds_between(1, 7 * 86400), jd.max_age),
        stale_for=optional(
            "jwks.stale_for", jwks_raw.get("stale_for"), seconds_between(0, 30 * 86400), jd.stale_for
        ),
        refetch_interval=optional(
            "jwks.refetch_interval",
            jwks_raw.get("refetch_interval"),
            seconds_between(0.1, 3600),
            jd.refetch_interval,
        ),
        ca_file=(base / ca_file).resolve() if isinstance(ca_file, str) else None,
    )
    identities = _identities(r, top.get("identities"))
    console = Console(
        enabled=optional("console.enabled", console_raw.get("enabled"), boolean, True),
        session_lifetime=optional(
            "console.session_lifetime",
            console_raw.get("session_lifetime"),
            seconds_between(60, 8 * 3600),
            Console().session_lifetime,
        ),
    )
    vault = _vault(r, top.get("vault"), seconds_between)

    def key_files(value: object) -> tuple[Path, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ValueError("expected a list of master key files")
        return tuple((base / i).resolve() for i in items)

    config_kwargs = dict(
        previous_master_keys=optional("previous_master_keys", top.get("previous_master_keys"), key_files, ()),
        workers=optional("workers", top.get("workers"), positive_int, 1),
        trusted_proxies=optional("trusted_proxies", top.get("trusted_proxies"), networks, ()),
        reload_interval=optional("reload.interval", reload_raw.get("interval"), parse_duration, 1.0),
        shutdown_timeout=optional("shutdown_timeout", top.get("shutdown_timeout"), parse_duration, 30.0),
        log_level=optional("log_level", top.get("log_level"), log_level, "info"),
        access_log=optional("access_log", top.get("access_log"), boolean, False),
    )
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
        limits=limits,
        timeouts=timeouts,
        tokens=tokens,
        throttle=throttle,
        caches=caches,
        usage=usage,
        rate_limits=rate_limits,
        decisions=decisions,
        jwks=jwks,
        identities=identities,
        console=console,
        vault=vault,
        **config_kwargs,
    )


def _identities(r: _Reader, raw: object) -> tuple[dict[str, Any], ...]:
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


def _vault(r: _Reader, data: Any, seconds_between: Any) -> VaultSettings:
    """`vault:`: settings and the connections defined in the file (snake_case keys; the client
    secret only by environment variable, so no secret sits in the config file)."""
    from gateway.errors import InvalidRequest
    from gateway.vault_models import connection_from

    raw = r.mapping(data, "vault", {"provider_timeout", "connections"})
    timeout = 5.0  # VaultSettings.provider_timeout
    if raw.get("provider_timeout") is not None:
        try:
            timeout = seconds_between(0.1, 30)(raw["provider_timeout"])
        except ValueError as exc:
            r.fail("vault.provider_timeout", str(exc))
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
    return VaultSettings(provider_timeout=timeout, connections=tuple(connections))
