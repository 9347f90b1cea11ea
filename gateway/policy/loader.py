"""Policy files → one immutable, compiled `Policy`, or every problem with file, route and field.

Nothing here runs per request: templates are parsed, resources compiled, routes inserted into the
table and ambiguities refused once, at load. A route that is not `auth: none` must say what it
requires (a permission on a resource, scopes, or `authenticated: true`), so no route is open by
omission.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from gateway.errors import ConfigError
from gateway.policy.model import (
    AUTH_KINDS,
    Route,
    Template,
    Upstream,
    parse_resource,
    parse_template,
)
from gateway.policy.table import RouteTable, overlaps
from gateway.quota import parse_rate_limit
from gateway.units import parse_duration

_ROUTE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
_UPSTREAM_NAME = _ROUTE_ID
_METHOD = re.compile(r"^[A-Z][A-Z0-9_-]*$")
_ROUTE_KEYS = {
    "id",
    "match",
    "upstream",
    "auth",
    "permission",
    "resource",
    "scopes",
    "audience",
    "authenticated",
    "rate_limit",
}
_UPSTREAM_KEYS = {
    "url",
    "timeout",
    "connect_timeout",
    "pool_size",
    "pool_timeout",
    "retries",
    "strip_prefix",
    "preserve_host",
    "forward_authorization",
}
_ROUTE_DEFAULTS = frozenset(AUTH_KINDS)
_RESERVED_IDS = frozenset({"unmatched", "gateway"})
# libyaml's safe loader when PyYAML was built with it: ~3.5x faster on large policies.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The gateway's own public endpoints (contract §1, §3), under the path of `public_url`.
# A route that can match any of them is a load error: they always win.
RESERVED_TEMPLATES = (
    "/.well-known/openid-configuration",
    "/.well-known/openid-configuration/jwks",
    "/.well-known/oauth-authorization-server",
    "/.well-known/jwks.json",
    "/oauth/{endpoint*}",
    "/v1/clients/{clientId}/.well-known/{document*}",
)


def reserved_paths(base_path: str) -> list[str]:
    """The own endpoints' templates for a `public_url` path: each under the path, plus RFC 8414
    §3.1's metadata URL with the path inserted after `/.well-known/...` (at the root)."""
    paths = [base_path + t for t in RESERVED_TEMPLATES]
    if base_path:
        paths.append(f"/.well-known/oauth-authorization-server{base_path}")
    return paths


class PolicyError(ConfigError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Policy:
    upstreams: dict[str, Upstream]
    routes: tuple[Route, ...]
    table: RouteTable
    files: tuple[Path, ...] = field(default=())


def policy_files(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """The YAML files named directly or found below the given folders, in a stable order."""
    files: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            # Hidden entries are skipped: Kubernetes mounts a ConfigMap as `..2026_…/` plus links,
            # which would otherwise load every file twice.
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        elif path.is_file():
            found = [path]
        else:
            problems.append(f"{path}: no such file or folder")
            continue
        for file in found:
            if file.resolve() not in seen:
                seen.add(file.resolve())
                files.append(file)
    return files, problems


def load_policy(paths: Iterable[Path], base_path: str = "") -> Policy:
    """Load and compile; raises PolicyError listing every problem found."""
    files, problems = policy_files(paths)
    upstreams: dict[str, Upstream] = {}
    raw_routes: list[tuple[Path, int, dict[str, Any]]] = []
    for file in files:
        doc = _read_yaml(file, problems)
        if doc is None:
            continue
        for name, spec in (doc.get("upstreams") or {}).items():
            where = f"{file}: upstream {name}"
            if name in upstreams:
                problems.append(f"{where}: name: defined twice")
                continue
            upstream = _upstream(str(name), spec, where, problems)
            if upstream is not None:
                upstreams[upstream.name] = upstream
        raw_routes.extend((file, i, spec) for i, spec in enumerate(doc.get("routes") or []))

    reserved = [parse_template(t) for t in reserved_paths(base_path)]
    table = RouteTable()
    routes: list[Route] = []
    seen_ids: dict[str, Path] = {}
    for file, index, spec in raw_routes:
        route = _route(file, index, spec, upstreams, reserved, problems)
        if route is None:
            continue
        if route.id in seen_ids:
            problems.append(f"{file}: route {route.id}: id: already used in {seen_ids[route.id]}")
            continue
        seen_ids[route.id] = file
        clash = table.add(route)
        if clash is not None:
            problems.append(
                f"{file}: route {route.id}: match: {route.match!r} is ambiguous with route "
                f"{clash.id} ({clash.match!r} in {clash.source}): both match the same requests "
                "with the same specificity"
            )
            continue
        routes.append(route)
    if problems:
        raise PolicyError(problems)
    return Policy(upstreams, tuple(routes), table, tuple(files))


def _read_yaml(file: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        doc = yaml.load(file.read_text(encoding="utf-8"), Loader=_LOADER)
    except OSError as exc:
        problems.append(f"{file}: cannot read: {exc.strerror}")
        return None
    except UnicodeDecodeError:
        problems.append(f"{file}: not UTF-8 text")
        return None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problems.append(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}")
        return None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        problems.append(f"{file}: expected a mapping with `upstreams` and `routes`")
        return None
    for key in doc:
        if key not in ("upstreams", "routes"):
            problems.append(f"{file}: {key}: unknown key (expected `upstreams` and `routes`)")
    if not isinstance(doc.get("upstreams") or {}, dict):
        problems.append(f"{file}: upstreams: expected a mapping of names to upstreams")
        doc["upstreams"] = {}
    if doc.get("routes") is not None and not isinstance(doc["routes"], list):  # `routes: {}` too
        problems.append(f"{file}: routes: expected a list of routes")
        doc["routes"] = []
    return doc


# Synonyms an operator may reach for, with the field that does the job.
_SYNONYMS = {"scope": "scopes", "timout": "timeout", "permissions": "permission", "ratelimit": "rate_limit"}


def did_you_mean(key: object, known: set[str]) -> str:
    """` (did you mean scopes?)` for a misspelt field, or nothing."""
    import difflib

    if not isinstance(key, str):
        return ""
    guess = _SYNONYMS.get(key.lower()) or next(
        iter(difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.75)), None
    )
    return f" (did you mean {guess}?)" if guess in known else ""


def _upstream(name: str, spec: Any, where: str, problems: list[str]) -> Upstream | None:
    before = len(problems)
    if not _UPSTREAM_NAME.match(name):
        problems.append(f"{where}: name: use letters, digits, . _ : - (at most 100)")
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected a mapping with at least `url`")
        return None
    for key in spec:
        if key not in _UPSTREAM_KEYS:
            problems.append(f"{where}: {key}: unknown field{did_you_mean(key, _UPSTREAM_KEYS)}")
    url = spec.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where}: url: expected an http:// or https:// URL")
        return None
    if parts.query or parts.fragment or parts.username:
        problems.append(f"{where}: url: must not have credentials, a query or a fragment")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        problems.append(f"{where}: url: invalid port")
        return None

    def number(key: str, parse: Any, default: Any) -> Any:
        if key not in spec:
            return default
        try:
            return parse(spec[key])
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: {key}: {exc}")
            return default

    def count(minimum: int) -> Any:
        def parse(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"expected a whole number of at least {minimum}")
            return value

        return parse

    def flag(value: Any) -> bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value

    def prefix(value: Any) -> str:
        if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
            raise ValueError("expected a path such as /api (starting with /, no trailing /)")
        if parse_template(value).params or not value.isascii():
            raise ValueError("expected literal ASCII segments such as /api/v1")
        return value

    upstream = Upstream(
        name=name,
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        base_path=parts.path.rstrip("/"),
        connect_timeout=number("connect_timeout", parse_duration, 5.0),
        read_timeout=number("timeout", parse_duration, 30.0),
        pool_size=number("pool_size", count(1), 100),
        pool_timeout=number("pool_timeout", parse_duration, 10.0),
        retries=number("retries", count(0), 1),
        strip_prefix=number("strip_prefix", prefix, ""),
        preserve_host=number("preserve_host", flag, False),
        forward_authorization=number("forward_authorization", flag, False),
    )
    return upstream if len(problems) == before else None


def _route(
    file: Path,
    index: int,
    spec: Any,
    upstreams: dict[str, Upstream],
    reserved: list[Template],
    problems: list[str],
) -> Route | None:
    if not isinstance(spec, dict):
        problems.append(f"{file}: routes[{index}]: expected a mapping")
        return None
    rid = spec.get("id")
    if not isinstance(rid, str) or not _ROUTE_ID.match(rid):
        problems.append(f"{file}: routes[{index}]: id: required; letters, digits, . _ : - (at most 100)")
        return None
    where = f"{file}: route {rid}"
    before = len(problems)
    if rid in _RESERVED_IDS:
        problems.append(f"{where}: id: {rid!r} is reserved (it labels the gateway's own metrics)")
    for key in spec:
        if key not in _ROUTE_KEYS:
            problems.append(f"{where}: {key}: unknown field{did_you_mean(key, _ROUTE_KEYS)}")

    methods: frozenset[str] | None = None
    template: Template | None = None
    match = spec.get("match")
    if not isinstance(match, str) or len(match.split()) != 2:
        problems.append(f"{where}: match: expected `METHOD PATH`, for example `GET /v1/items/{{id}}`")
    else:
        method_text, path_text = match.split()
        if method_text != "*":
            names = method_text.split("|")
            bad = [m for m in names if not _METHOD.match(m)]
            if bad:
                problems.append(
                    f"{where}: match: method {bad[0]!r} is not an upper-case HTTP method (methods are case-sensitive)"
                )
            elif len(set(names)) != len(names):
                problems.append(f"{where}: match: a method is listed twice")
            else:
                methods = frozenset(names)
        try:
            template = parse_template(path_text)
        except ValueError as exc:
            problems.append(f"{where}: match: {exc}")
    if template is not None:
        for own in reserved:
            if overlaps(template.segments, own.segments):
                problems.append(f"{where}: match: overlaps the gateway's own endpoint {own.text}")
                break

    upstream = spec.get("upstream")
    if not isinstance(upstream, str) or upstream not in upstreams:
        problems.append(
            f"{where}: upstream: {'no upstream named ' + repr(upstream) if isinstance(upstream, str) else 'required'}"
        )

    auth_spec = spec.get("auth")
    auth: frozenset[str] = _ROUTE_DEFAULTS
    if auth_spec == "none":
        auth = frozenset()
    elif auth_spec is not None:
        kinds = [auth_spec] if isinstance(auth_spec, str) else auth_spec
        if not isinstance(kinds, list) or not kinds or any(k not in AUTH_KINDS for k in kinds):
            problems.append(f"{where}: auth: expected `none` or a list of {', '.join(AUTH_KINDS)}")
        else:
            auth = frozenset(kinds)

    permission = spec.get("permission")
    resource_text = spec.get("resource")
    scopes = spec.get("scopes", [])
    audience = spec.get("audience")
    authenticated = spec.get("authenticated", False)
    if permission is not None and (not isinstance(permission, str) or not permission or " " in permission):
        problems.append(f"{where}: permission: expected an action such as documents:read")
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s and " " not in s for s in scopes):
        problems.append(f"{where}: scopes: expected a list of scope names")
        scopes = []
    if audience is not None and (not isinstance(audience, str) or not audience):
        problems.append(f"{where}: audience: expected a string")
    if not isinstance(authenticated, bool):
        problems.append(f"{where}: authenticated: expected true or false")
    resource = None
    if resource_text is not None:
        if not isinstance(resource_text, str):
            problems.append(f"{where}: resource: expected a path such as /users/{{userId}}")
        elif template is not None:
            try:
                resource = parse_resource(resource_text, template.params)
            except ValueError as exc:
                problems.append(f"{where}: resource: {exc}")
    if (permission is None) != (resource_text is None):
        missing = "resource" if resource_text is None else "permission"
        problems.append(
            f"{where}: {missing}: required with {'permission' if missing == 'resource' else 'resource'}"
        )
    if not auth:
        if permission is not None or scopes or audience is not None or authenticated:
            problems.append(
                f"{where}: auth: an `auth: none` route cannot require permission, scopes, audience or authenticated"
            )
    elif permission is None and not scopes and authenticated is not True:
        problems.append(
            f"{where}: auth: the route must require `permission` + `resource`, `scopes`, or say "
            "`authenticated: true` (or be `auth: none`): no route is open by omission"
        )
    rate_limit = None
    if spec.get("rate_limit") is not None:
        if not auth:
            problems.append(
                f"{where}: rate_limit: limits count per authenticated client; an `auth: none` route has none"
            )
        else:
            try:
                rate_limit = parse_rate_limit(spec["rate_limit"], durations=True)
            except ValueError as exc:
                sep = "." if ":" in str(exc) else ": "
                problems.append(f"{where}: rate_limit{sep}{exc}")
    if len(problems) != before or template is None:
        return None
    return Route(
        id=rid,
        source=str(file),
        methods=methods,
        template=template,
        upstream=str(upstream),
        auth=auth,
        permission=permission,
        resource=resource,
        scopes=tuple(scopes),
        audience=audience,
        authenticated=authenticated is True,
        rate_limit=rate_limit,
    )
