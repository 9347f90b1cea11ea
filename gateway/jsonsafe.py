"""JSON from strangers: credentials' header and payload segments, request bodies.

`json.loads` raises RecursionError (not ValueError) on input nested a few thousand levels deep,
which once turned a crafted credential into a 500 (issue 9, defect 2); it also takes the last of
duplicate members, reads `1e999` as infinity and accepts `NaN`. `loads` here refuses all of
those with `JsonError` (a ValueError, so callers' existing handling applies): nesting beyond
`max_depth`, duplicate member names (two readers could each pick a different one), integers
longer than 40 digits, non-finite numbers.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 32
_MAX_DIGITS = 40
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JsonError(ValueError):
    pass


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise JsonError("duplicate member name")
    return obj


def _int(text: str) -> int:
    if len(text) > _MAX_DIGITS:
        raise JsonError("number too large")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError("number out of range")
    return value


def _constant(name: str) -> Any:
    raise JsonError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(
    object_pairs_hook=_object, parse_int=_int, parse_float=_float, parse_constant=_constant
)


def _too_deep(text: str, limit: int) -> bool:
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > limit:
            return True
    return False


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON; raises JsonError (or UnicodeDecodeError, both ValueErrors)."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    # Counting brackets is C-speed; the exact walk runs only when the count could be too deep.
    if text.count("[") + text.count("{") > max_depth and _too_deep(text, max_depth):
        raise JsonError("nested too deeply")
    try:
        return _DECODER.decode(text)
    except RecursionError:  # defence in depth: the walk above should have refused it
        raise JsonError("nested too deeply") from None
