"""A presented credential, with its JWT header and claims peeked at most once.

Peeking is unverified: it only tells the authenticators whose credential it is ("not mine" falls
through to the next one). Nothing read here is trusted until a signature check has passed.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from gateway import jsonsafe


@dataclass(frozen=True, slots=True)
class UnverifiedJwt:
    header: dict[str, Any]
    claims: dict[str, Any]


def _segment(text: str) -> Any:
    return jsonsafe.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


class Presented:
    __slots__ = ("_jwt", "_peeked", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._peeked = False
        self._jwt: UnverifiedJwt | None = None

    @property
    def jwt(self) -> UnverifiedJwt | None:
        """Header and claims when the credential is shaped like a JWS compact JWT, else None."""
        if not self._peeked:
            self._peeked = True
            parts = self.text.split(".")
            if len(parts) == 3 and self.text.startswith("eyJ") and len(self.text) <= 16384:
                try:
                    header, claims = _segment(parts[0]), _segment(parts[1])
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    return None
                if isinstance(header, dict) and isinstance(claims, dict):
                    self._jwt = UnverifiedJwt(header, claims)
        return self._jwt


def numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A NumericDate claim: a finite number (never a bool, string, NaN or infinity), or None
    when absent. Raises ValueError when present and malformed."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number")
    return float(value)
