"""The rule model: immutable upstreams, routes and path templates, built once at load."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from gateway.errors import InvalidRequest
from gateway.paths import check_resource
from gateway.quota import RateLimit

AUTH_KINDS = ("access_key", "client_jwt", "gateway_jwt", "oidc")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class Kind(Enum):
    """Segment kinds, in order of specificity (lower value wins)."""

    LITERAL = 0
    PARAM = 1
    REST = 2


@dataclass(frozen=True, slots=True)
class Segment:
    kind: Kind
    value: str  # the literal text, or the parameter's name


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed path template: `/v1/users/{userId}/files/{path*}`."""

    text: str
    segments: tuple[Segment, ...]
    # The parameter names in order: a field, not a property, since every match reads it.
    params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = tuple(s.value for s in self.segments if s.kind is not Kind.LITERAL)
        object.__setattr__(self, "params", names)


def parse_template(text: str) -> Template:
    """Parse a path template; raises ValueError saying what is wrong."""
    if not text.startswith("/"):
        raise ValueError("the path must start with /")
    parts = text[1:].split("/")
    segments: list[Segment] = []
    seen: set[str] = set()
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("{") and part.endswith("}"):
            name, rest = part[1:-1], False
            if name.endswith("*"):
                name, rest = name[:-1], True
            if not _NAME.match(name):
                raise ValueError(f"{{{name}}} is not a valid parameter name")
            if name in seen:
                raise ValueError(f"parameter {{{name}}} appears twice")
            seen.add(name)
            if rest and not last:
                raise ValueError(f"{{{name}*}} may only be the last segment")
            segments.append(Segment(Kind.REST if rest else Kind.PARAM, name))
        elif "{" in part or "}" in part:
            raise ValueError(f"segment {part!r} mixes text and a {{parameter}}")
        elif part == "" and not last:
            raise ValueError("empty segment (//)")
        elif part in (".", ".."):
            raise ValueError("a . or .. segment can never match a request")
        elif "%" in part or ";" in part or "\\" in part or any(ord(c) < 0x20 for c in part):
            raise ValueError(
                f"segment {part!r} has a character requests are refused for (write segments decoded)"
            )
        else:
            segments.append(Segment(Kind.LITERAL, part))
    return Template(text, tuple(segments))


@dataclass(frozen=True, slots=True)
class ResourceTemplate:
    """`/users/{userId}/documents/{docId}`, filled from the matched path parameters."""

    text: str
    parts: tuple[tuple[bool, str], ...]  # (is_param, literal text or parameter name)

    def fill(self, params: dict[str, str]) -> str:
        return "".join(params[v] if is_param else v for is_param, v in self.parts)


def parse_resource(text: str, params: tuple[str, ...]) -> ResourceTemplate:
    if not text.startswith("/"):
        raise ValueError("the resource must start with /")
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _PLACEHOLDER.finditer(text):
        if m.group(1) not in params:
            raise ValueError(f"{{{m.group(1)}}} is not a parameter of the route's path")
        if m.start() > pos:
            parts.append((False, text[pos : m.start()]))
        parts.append((True, m.group(1)))
        pos = m.end()
    if pos < len(text):
        parts.append((False, text[pos:]))
    if any("{" in v or "}" in v for is_param, v in parts if not is_param):
        raise ValueError("unbalanced { or }")
    template = ResourceTemplate(text, tuple(parts))
    # Filled from canonical path segments, the result must itself be canonical (defect 13):
    # `/users/{id}/../x` or `/users//{id}` would grant what a service later reads as another path.
    try:
        check_resource(template.fill(dict.fromkeys(params, "x")), "resource")
    except InvalidRequest as exc:
        raise ValueError(exc.description.removeprefix("resource: ")) from None
    return template


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    scheme: str
    host: str
    port: int
    base_path: str  # the URL's path without a trailing /, prepended to forwarded paths
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    pool_size: int = 100
    pool_timeout: float = 10.0  # how long a request may wait for a free pooled connection
    retries: int = 1  # for idempotent requests without a body, on a connection that failed to answer
    strip_prefix: str = ""
    preserve_host: bool = False
    forward_authorization: bool = False

    def target_path(self, path: str) -> str:
        """The path sent upstream for an authorized path: prefix stripped, base prepended."""
        prefix = self.strip_prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            path = path[len(prefix) :] or "/"
        return self.base_path + path if self.base_path else path


@dataclass(frozen=True, slots=True)
class Route:
    id: str
    source: str  # the file it came from
    methods: frozenset[str] | None  # None means `*`
    template: Template
    upstream: str
    auth: frozenset[str]  # credential kinds accepted; empty means `auth: none`
    permission: str | None = None
    resource: ResourceTemplate | None = None
    scopes: tuple[str, ...] = ()
    audience: str | None = None
    authenticated: bool = False
    rate_limit: RateLimit | None = None  # per client calling the route (issue 14)

    @property
    def public(self) -> bool:
        return not self.auth

    @property
    def match(self) -> str:
        methods = "*" if self.methods is None else "|".join(sorted(self.methods))
        return f"{methods} {self.template.text}"
