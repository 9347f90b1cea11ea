"""A rate limit as a value (issue 14, contract §7): `requests` per `window` seconds, with an
optional `burst`. Neutral ground: the policy model (a route's `rate_limit:`), the identity model
(a client's `rateLimit`) and the rate-limit stage all use it.

The limiter behind it is GCRA (the "generic cell rate algorithm", a token bucket kept as one
number per key): requests are admitted at `requests / window` on average, and up to `burst`
(default: `requests`) at once. So a client that was quiet may use its whole window's allowance
at once, as with a fixed window, but never more than `burst + requests` in any one window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.units import parse_duration

MAX_REQUESTS = 1_000_000_000
MAX_WINDOW = 86400 * 31


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int
    window: float  # seconds
    burst: int | None = None
    # Derived once (the limiter reads them on every request): seconds of allowance one request
    # costs, and how far ahead of now a key's theoretical arrival time may run (GCRA's tau).
    interval: float = field(init=False, repr=False, compare=False)
    tolerance: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        interval = self.window / self.requests
        object.__setattr__(self, "interval", interval)
        object.__setattr__(self, "tolerance", interval * self.capacity)

    @property
    def capacity(self) -> int:
        return self.burst if self.burst is not None else self.requests

    def as_json(self) -> dict[str, Any]:
        window: float | int = int(self.window) if self.window == int(self.window) else self.window
        return {"requests": self.requests, "window": window, "burst": self.burst}


def whole(value: object) -> object:
    """JSON has one number type (RFC 8259 §6): 60.0 is the whole number 60."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _count(value: object, field: str) -> int:
    value = whole(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REQUESTS:
        raise ValueError(f"{field}: expected a whole number from 1 to {MAX_REQUESTS}")
    return value


def parse_rate_limit(value: object, durations: bool = False) -> RateLimit:
    """`{"requests": N, "window": seconds, "burst"?: M}`; raises ValueError `<field>: <why>`.
    With `durations` (policy files), the window may also be written `60s`, `1m`, `1h`."""
    if not isinstance(value, dict):
        raise ValueError("expected {requests, window, burst?}")
    unknown = sorted(set(value) - {"requests", "window", "burst"})
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown field (expected requests, window, burst)")
    requests = _count(value.get("requests"), "requests")
    raw_window = whole(value.get("window"))
    try:
        if durations and isinstance(raw_window, str):
            window = parse_duration(raw_window)
        elif isinstance(raw_window, bool) or not isinstance(raw_window, int):
            raise ValueError
        else:
            window = float(raw_window)
    except ValueError:
        expected = "a duration such as 60s or 1m" if durations else "whole seconds"
        raise ValueError(f"window: expected {expected}") from None
    if not 1 <= window <= MAX_WINDOW:
        raise ValueError(f"window: expected from 1 second to {MAX_WINDOW // 86400} days")
    burst = value.get("burst")
    return RateLimit(requests, window, None if burst is None else _count(burst, "burst"))
