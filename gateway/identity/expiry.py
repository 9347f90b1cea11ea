"""When a credential expires, from an admin request (contract §7, issue 14).

`{"expiresIn": seconds}` or `{"expiresAt": ISO 8601}` on `POST …/access-keys` and `POST …/secrets`;
neither means the credential never expires. The result is stored in the one time format of the
store (`models.iso_of`), so that "not expired" is a string comparison in SQL too.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from gateway.errors import InvalidRequest
from gateway.models import iso_of

#: The furthest ahead an expiry may be set: ten years (beyond that, say "never").
MAX_SECONDS = 10 * 365 * 86400


def expiry_from(body: dict[str, Any], now: float | None = None) -> str | None:
    seconds, at = body.get("expiresIn"), body.get("expiresAt")
    if seconds is not None and at is not None:
        raise InvalidRequest("expiresIn: give expiresIn or expiresAt, not both")
    now = time.time() if now is None else now
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_SECONDS:
            raise InvalidRequest(f"expiresIn: expected whole seconds from 1 to {MAX_SECONDS}")
        return iso_of(datetime.fromtimestamp(now + seconds, UTC))
    if at is None:
        return None
    if not isinstance(at, str):
        raise InvalidRequest("expiresAt: expected an ISO 8601 time such as 2030-01-31T12:00:00Z")
    try:
        moment = datetime.fromisoformat(at)
    except ValueError:
        raise InvalidRequest("expiresAt: expected an ISO 8601 time such as 2030-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidRequest("expiresAt: give a time zone (Z for UTC), for example 2030-01-31T12:00:00Z")
    if moment.timestamp() <= now:
        raise InvalidRequest("expiresAt: must be in the future")
    if moment.timestamp() > now + MAX_SECONDS:
        raise InvalidRequest("expiresAt: at most ten years ahead (leave it out for a key that never expires)")
    return iso_of(moment)


def moment_of(text: str | None, field: str, default: float) -> float:
    """An ISO 8601 time with a zone (`2030-01-31T12:00:00Z`) as epoch seconds; `default` when
    absent. Raises InvalidRequest naming `field` (an API query parameter or a CLI option)."""
    if text is None:
        return default
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{field}: expected an ISO 8601 time such as 2030-01-31T12:00:00Z") from None
    if moment.tzinfo is None:
        raise InvalidRequest(f"{field}: give a time zone (Z for UTC)")
    return moment.timestamp()
