"""The parameters of a request to the token server: a form body (RFC 6749), or a JSON object for
SDKs that send one (SuperTokens' camelCase names accepted), each parameter at most once."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from gateway import jsonsafe
from gateway.errors import InvalidRequest

MAX_BODY = 64 * 1024
NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
_SECRET_PARAMS = ("client_secret", "client_assertion", "assertion", "password", "refresh_token")
# SuperTokens' camelCase JSON fields → RFC 6749 names
_JSON_ALIASES = {
    "clientId": "client_id",
    "clientSecret": "client_secret",
    "grantType": "grant_type",
    "clientAssertion": "client_assertion",
    "clientAssertionType": "client_assertion_type",
}


async def read_params(request: Request) -> dict[str, str]:
    """The request's parameters, each given once: a form body, or a JSON object (snake_case or
    camelCase; `scope` and `audience` may be arrays). Credentials in the query string, a method
    other than POST, an oversized body or a repeated parameter are `invalid_request`."""
    if request.method != "POST":
        raise InvalidRequest("use POST")
    if any(name in _SECRET_PARAMS for name, _ in parse_qsl(request.url.query, keep_blank_values=True)):
        raise InvalidRequest("credentials must not be sent in the query string")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise InvalidRequest(f"the body is over {MAX_BODY} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        return _json_params(body)
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise InvalidRequest("send application/x-www-form-urlencoded or application/json")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("malformed form body") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise InvalidRequest(f"{name}: given more than once")
        params[name] = value
    return params


def _json_params(body: bytes) -> dict[str, str]:
    try:
        data = jsonsafe.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: expected a JSON object")
    params: dict[str, str] = {}
    for raw_name, value in data.items():
        name = _JSON_ALIASES.get(raw_name) or str(raw_name)
        if name in params:
            raise InvalidRequest(f"{name}: given more than once")
        if name in ("scope", "audience", "resource") and isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise InvalidRequest(f"{name}: expected strings")
            if name != "scope" and len(value) != 1:
                raise InvalidRequest(f"{name}: give one")
            value = " ".join(value) if name == "scope" else value[0]
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidRequest(f"{name}: expected a string")
        params[name] = value
    return params
