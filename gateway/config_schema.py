"""The config file's schema machinery: value parsers, and `setting()`, which declares a key on the
dataclass field that holds it, so its default, its parser and its name are stated once.

    @dataclass(frozen=True, slots=True)
    class Caches:
        credentials: int = setting(100_000, count)

`read_section` then reads `caches:` from the YAML: unknown keys, and every value that does not
parse, are reported as `FILE: caches.credentials: why` (all problems at once, not the first).
A parser takes the YAML value and returns the typed one or raises ValueError with the why.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from gateway.units import parse_duration

_T = TypeVar("_T")
Parser = Callable[[object], Any]


def setting(default: Any, parse: Parser, *, relative_path: bool = False, key: str | None = None) -> Any:
    """A config key: its default and its parser. `relative_path`: a file path (or a tuple of
    them), resolved against the config file's folder. `key`: the YAML key when it is not the
    field's name (dotted for a nested one)."""
    return field(default=default, metadata={"parse": parse, "relative_path": relative_path, "key": key})


class Reader:
    """Reads typed values out of nested YAML mappings, collecting every problem with its key."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.base = source.resolve().parent
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

    def value(self, key: str, value: Any, parse: Parser, default: Any = None) -> Any:
        """`value` parsed, `default` when absent; a problem (and `default`) when it does not parse."""
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            self.fail(key, str(exc))
            return default

    def required(self, key: str, value: Any, parse: Parser) -> Any:
        if value is None:
            self.fail(key, "required key is missing")
            return None
        return self.value(key, value, parse)


def declared(cls: type) -> list[Field[Any]]:
    """The fields of a section that are config keys (declared with `setting`)."""
    return [f for f in fields(cls) if "parse" in f.metadata]


def read_section(r: Reader, raw: Any, name: str, cls: type[_T], extra_keys: set[str] = frozenset()) -> _T:  # type: ignore[assignment]
    """The section `name` of the config as a `cls`: every key declared on it with `setting`."""
    keys = declared(cls)
    data = r.mapping(raw, name, {f.name for f in keys} | set(extra_keys))
    return cls(**read_values(r, data, name, keys))


def read_values(r: Reader, data: dict[str, Any], section: str, keys: list[Field[Any]]) -> dict[str, Any]:
    """The declared keys present in `data`, parsed (those that do not parse are reported and left
    out, so the dataclass default stands in while the problems are collected)."""
    values: dict[str, Any] = {}
    for f in keys:
        key = f.metadata["key"] or f.name
        value: Any = data
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        parsed = r.value(f"{section}.{key}" if section else key, value, f.metadata["parse"], MISSING)
        if parsed is MISSING:
            continue
        if f.metadata["relative_path"]:
            parsed = (
                tuple((r.base / p).resolve() for p in parsed)
                if isinstance(parsed, tuple)
                else (r.base / parsed).resolve()
            )
        values[f.name] = parsed
    return values


# --- value parsers ------------------------------------------------------------------------------


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


def parse_url(value: object) -> str:
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


def positive_int(value: object) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("expected a whole number of at least 1")
    return value


def count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a whole number, 0 or more")
    return value


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("expected true or false")
    return value


def seconds_between(low: float, high: float) -> Parser:
    def parse(value: object) -> float:
        seconds = parse_duration(value)
        if not low <= seconds <= high:
            raise ValueError(f"expected a duration from {low:g}s to {high:g}s")
        return seconds

    return parse


def positive_seconds(value: object) -> float:
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError("expected a duration above 0s")
    return seconds


def one_of(*choices: str, message: str | None = None) -> Parser:
    def parse(value: object) -> str:
        if value not in choices:
            raise ValueError(message or f"expected one of {', '.join(choices)}")
        return str(value)

    return parse


def file_path(value: object) -> Path:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a file path")
    return Path(value)


def file_paths(what: str) -> Parser:
    def parse(value: object) -> tuple[Path, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
            raise ValueError(f"expected a list of {what}")
        return tuple(Path(i) for i in items)

    return parse


def log_level(value: object) -> str:
    if value not in ("critical", "error", "warning", "info", "debug"):
        raise ValueError("expected one of critical, error, warning, info, debug")
    return str(value)


def networks(value: object) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    if not isinstance(value, list):
        raise ValueError("expected a list of addresses or CIDR ranges")
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
    except ValueError:
        raise ValueError("expected a list of addresses or CIDR ranges") from None


def limiter_backend(value: object) -> str:
    if value == "local":
        return "local"
    if isinstance(value, str) and urlsplit(value).scheme in ("redis", "rediss", "unix") and len(value) > 8:
        return value
    raise ValueError("expected local or a redis:// URL (redis://HOST:PORT/DB)")


def key_prefix(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9:_.-]{1,64}", value):
        raise ValueError("expected 1 to 64 letters, digits and : _ . -")
    return value


def revocation_bound(value: object) -> int:
    # max-age is whole seconds (RFC 9111 §5.2.2.1), and no cached decision may outlive the 1 s
    # revocation bound: so 0 or 1.
    seconds = parse_duration(value)
    if seconds not in (0, 1):
        raise ValueError("expected 0s (no caching) or 1s (the revocation bound)")
    return int(seconds)
