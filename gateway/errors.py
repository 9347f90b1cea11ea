"""Errors that carry their HTTP meaning, and the one place that renders them.

    GatewayError                 every error the gateway answers itself (contract §4 table)
    ├── InvalidRequest           400 invalid_request   ambiguous path, two credentials, bad input
    ├── InvalidToken             401 invalid_token     credential missing, malformed, unknown, bad
    ├── InsufficientScope        403 insufficient_scope
    ├── AccessDenied             403 access_denied
    ├── NotFound                 404 not_found         no route matches
    ├── ConflictError            409 conflict          the object exists, or a limit (5 keys) is reached
    ├── ReauthorizationRequired  409 reauthorization_required  the provider refused a user's refresh token
    ├── MethodNotAllowed         405 method_not_allowed (the gateway's own endpoints)
    ├── RequestTimeout           408 request_timeout   the request body stalled or trickled too slowly
    ├── RequestTooLarge          413 request_too_large body over the limit
    ├── HeadersTooLarge          431 request_too_large headers over the limit
    ├── OAuthError               the token server's errors (RFC 6749 §5.2), Cache-Control: no-store
    │   ├── InvalidClient        401 invalid_client    (WWW-Authenticate: Basic when Basic was used)
    │   ├── InvalidGrant         400 invalid_grant
    │   ├── UnsupportedGrantType 400 unsupported_grant_type
    │   ├── InvalidScope         400 invalid_scope
    │   ├── InvalidTarget        400 invalid_target    (RFC 8707)
    │   └── TooManyRequests      429 too_many_requests (Retry-After)
    ├── RateLimited              429 rate_limited      a client's or route's rate limit (Retry-After, RateLimit)
    ├── BadGateway               502 bad_gateway       upstream unreachable or broke the response
    ├── ProviderUnavailable      502 provider_unavailable  a vault connection's provider failed
    ├── GatewayTimeout           504 gateway_timeout   upstream timed out
    ├── ServiceUnavailable       503 temporarily_unavailable  the store cannot be reached (fails closed)
    │   └── RateLimitUnavailable 503 temporarily_unavailable  the rate-limit backend cannot (fail_closed)
    └── ServerError              500 server_error      a bug of ours; never forwards, never leaks

    ConfigError                  a config or policy file is wrong; names the file and field
    ClientGone                   the caller disconnected mid-request (logged as 499, never answered)

Third-party exceptions (httptools, PyJWT, cryptography, the store) are translated into these at the
edge where they are raised, so nothing else ever reaches a client.
"""

from __future__ import annotations

import json
from typing import ClassVar


class GatewayError(Exception):
    status: ClassVar[int] = 500
    error: ClassVar[str] = "server_error"
    default_description: ClassVar[str] = "internal error"
    # The authenticated client a refusal concerns (403, 429), for the access log; never rendered.
    client_id: str | None = None

    def __init__(self, description: str | None = None) -> None:
        self.description = description or self.default_description
        super().__init__(self.description)

    def www_authenticate(self) -> str | None:
        return None

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return []


class InvalidRequest(GatewayError):
    status = 400
    error = "invalid_request"
    default_description = "malformed request"


class InvalidToken(GatewayError):
    """401. `presented` says whether a credential came with the request (RFC 6750 §3:
    `error=` is only sent when one did)."""

    status = 401
    error = "invalid_token"
    default_description = "credential missing"

    def __init__(
        self, description: str | None = None, *, presented: bool = True, reason: str = "invalid"
    ) -> None:
        super().__init__(description)
        self.presented = presented
        self.reason = reason  # for gateway_auth_failures_total{reason}: from a fixed set

    def www_authenticate(self) -> str:
        if not self.presented:
            return 'Bearer realm="gateway"'
        return f'Bearer realm="gateway", error="invalid_token", error_description="{self.description}"'


class InsufficientScope(GatewayError):
    status = 403
    error = "insufficient_scope"
    default_description = "the credential lacks a required scope or audience"

    def www_authenticate(self) -> str:
        return f'Bearer realm="gateway", error="insufficient_scope", error_description="{self.description}"'


class AccessDenied(GatewayError):
    status = 403
    error = "access_denied"
    default_description = "no grant allows this request"


class NotFound(GatewayError):
    status = 404
    error = "not_found"
    default_description = "no route matches this request"


class ConflictError(GatewayError):
    status = 409
    error = "conflict"
    default_description = "conflict"


class ReauthorizationRequired(GatewayError):
    status = 409
    error = "reauthorization_required"
    default_description = "the provider no longer accepts this user's refresh token: run the login flow again"


class MethodNotAllowed(GatewayError):
    status = 405
    error = "method_not_allowed"
    default_description = "this endpoint does not answer that method"

    def __init__(self, description: str | None = None, allow: str = "") -> None:
        super().__init__(description)
        self.allow = allow  # RFC 9110 §15.5.6: a 405 MUST carry Allow

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"allow", self.allow.encode("latin-1"))]


class RequestTooLarge(GatewayError):
    status = 413
    error = "request_too_large"
    default_description = "request body is over the limit"


class RequestTimeout(GatewayError):
    """408: the caller's body stopped arriving (or crawled) while it held an upstream connection.
    The connection is closed after the answer (RFC 9110 §15.5.9)."""

    status = 408
    error = "request_timeout"
    default_description = "the request body did not arrive in time"

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"connection", b"close")]


class HeadersTooLarge(GatewayError):
    status = 431
    error = "request_too_large"
    default_description = "request headers are over the limit"


class OAuthError(GatewayError):
    status = 400

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"pragma", b"no-cache")]


class InvalidClient(OAuthError):
    status = 401
    error = "invalid_client"
    default_description = "client authentication failed"

    def __init__(self, description: str | None = None, *, basic: bool = False) -> None:
        super().__init__(description)
        self.basic = basic

    def www_authenticate(self) -> str | None:
        return 'Basic realm="gateway"' if self.basic else None


class InvalidGrant(OAuthError):
    error = "invalid_grant"
    default_description = "the grant is not valid"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"
    default_description = "this grant type is not supported"


class InvalidScope(OAuthError):
    error = "invalid_scope"
    default_description = "a requested scope is not allowed for this client"


class InvalidTarget(OAuthError):
    error = "invalid_target"
    default_description = "the requested audience is not allowed for this client"


class TooManyRequests(OAuthError):
    status = 429
    error = "too_many_requests"
    default_description = "too many failed attempts; retry later"

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = retry_after

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().extra_headers(), (b"retry-after", str(self.retry_after).encode())]


class BadGateway(GatewayError):
    status = 502
    error = "bad_gateway"
    default_description = "upstream unreachable"


class ProviderUnavailable(GatewayError):
    status = 502
    error = "provider_unavailable"
    default_description = "the connection's provider could not be reached; nothing stored changed"


class GatewayTimeout(GatewayError):
    status = 504
    error = "gateway_timeout"
    default_description = "upstream timed out"


class ServiceUnavailable(GatewayError):
    status = 503
    error = "temporarily_unavailable"
    default_description = "the gateway cannot check credentials right now; retry shortly"

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", b"1")]


class RateLimitUnavailable(ServiceUnavailable):
    default_description = "rate limits cannot be checked right now; retry shortly"


class RateLimited(GatewayError):
    status = 429
    error = "rate_limited"
    default_description = "rate limit reached; retry after the time in Retry-After"

    def __init__(self, retry_after: int, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.headers = headers

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"retry-after", str(self.retry_after).encode()), *self.headers]


class ServerError(GatewayError):
    pass


class ClientGone(Exception):
    """The caller disconnected: nobody is left to answer (not an error anyone sees)."""


class ConfigError(Exception):
    """A config or policy problem, worded for the operator: `file: where: why`."""


def render(exc: GatewayError, request_id: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The single rendering of a gateway error: status, raw headers and JSON body."""
    body = json.dumps(
        {"error": exc.error, "error_description": exc.description, "request_id": request_id},
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-request-id", request_id.encode()),
    ]
    challenge = exc.www_authenticate()
    if challenge is not None:
        headers.append((b"www-authenticate", challenge.encode()))
    headers.extend(exc.extra_headers())
    return exc.status, headers, body
