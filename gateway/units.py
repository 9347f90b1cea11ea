"""Parsing of the human units used in config and policy files: durations and sizes."""

from __future__ import annotations

import math
import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M|G)?\s*$")
_SIZE_SCALE = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "k": 1024,
    "K": 1024,
    "KB": 1000,
    "MiB": 1024**2,
    "M": 1024**2,
    "MB": 1000**2,
    "GiB": 1024**3,
    "G": 1024**3,
    "GB": 1000**3,
}


def parse_duration(value: object) -> float:
    """`10s`, `250ms`, `2m`, `1h` or a bare number of seconds → seconds (finite, ≥ 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s or 250ms")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_SCALE[m.group(2)]
    else:
        raise ValueError("expected a duration such as 10s or 250ms")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("expected a finite, non-negative duration")
    return seconds


def parse_size(value: object) -> int:
    """`64KiB`, `10MiB`, `1GiB` or a bare number of bytes → bytes (≥ 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 16KiB or 10MiB")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(m.group(1)) * _SIZE_SCALE[m.group(2)]
    else:
        raise ValueError("expected a size such as 16KiB or 10MiB")
    if size < 0:
        raise ValueError("expected a non-negative size")
    return size
