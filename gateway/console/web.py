"""The console's HTML plumbing: templates (autoescaped), forms, security headers, and errors
shown as pages.

Every response carries a strict Content-Security-Policy (scripts and styles only from the
console's own static files: no inline script, no inline style, no framing, forms post only to the
console), `X-Frame-Options: DENY`, `Referrer-Policy: no-referrer` and, for pages,
`Cache-Control: no-store` (a page may show a key once; it must not come back from a cache).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.admin.actions import may
from gateway.errors import GatewayError, InvalidRequest, RequestTooLarge
from gateway.store.backend import StoreError

log = logging.getLogger("gateway.console")

HERE = Path(__file__).parent
MAX_FORM = 256 * 1024

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
]

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class NavItem:
    key: str
    label: str
    collection: str  # shown to whoever may read it
    tenant_admins: bool = False  # shown to tenant admins too
    feature: str | None = None  # shown once that feature's pages exist (see FEATURES)


NAV = (
    NavItem("overview", "Overview", "", tenant_admins=True),
    NavItem("clients", "Service clients", "clients", tenant_admins=True),
    NavItem("roles", "Roles", "roles"),
    NavItem("records", "Access records", "records"),
    NavItem("identities", "Trusted identities", "identities", feature="identities"),
    NavItem("connections", "Connections", "connections", feature="connections"),
    NavItem("audit", "Audit log", "audit"),
    NavItem("policies", "Policies", "policies"),
    NavItem("signing-keys", "Signing keys", "signing-keys"),
)
# Pages that exist in this build (a feature's entry stays hidden until its page is written).
FEATURES: set[str] = {"identities", "connections"}


def nav_for(session: Any) -> list[NavItem]:
    if session is None:
        return []
    caller = session.caller
    return [
        item
        for item in NAV
        if (item.feature is None or item.feature in FEATURES)
        and (caller.tenant is None or item.tenant_admins)
        and (not item.collection or may(caller, item.collection, "read"))
    ]


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    base = request.scope.get("console_base", "/console")
    session = request.scope.get("console_session")
    html = templates.get_template(template).render(
        base=base, request=request, session=session, nav_items=nav_for(session), **context
    )
    return HTMLResponse(html, status_code=status)


async def form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the console's forms send nothing else); a
    field given twice keeps its last value."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidRequest("expected a form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise RequestTooLarge(f"the form is over {MAX_FORM} bytes")
    try:
        return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the form is not valid UTF-8") from None


def lines(text: str) -> list[str]:
    """A textarea's or a comma-separated field's entries, trimmed, empty ones left out."""
    return [part.strip() for part in text.replace(",", "\n").splitlines() if part.strip()]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith(f"{scope.get('root_path', '')}/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in (b"cache-control", *(h for h, _ in SECURITY_HEADERS))
                ]
                headers += SECURITY_HEADERS
                headers.append((b"cache-control", b"public, max-age=300" if static else b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_page(request: Request, status: int, title: str, description: str) -> Response:
    return page(request, "error.html", status=status, title=title, description=description)


def error_headers(response: Response, exc: GatewayError) -> Response:
    """The error's own headers (Retry-After when throttled or the store is down) on a page."""
    for name, value in exc.extra_headers():
        response.headers[name.decode()] = value.decode()
    return response


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_headers(error_page(request, exc.status, exc.error.replace("_", " "), exc.description), exc)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, "not found", "There is no such page in the console.")
    if exc.status_code == 405:
        return error_page(request, 405, "method not allowed", "This page does not answer that method.")
    return error_page(request, 400, "invalid request", "The request was not understood.")


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable during console %s: %s", request.method, type(exc).__name__)
    response = error_page(
        request, 503, "temporarily unavailable", "The store cannot be reached; retry shortly."
    )
    response.headers["retry-after"] = "1"
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in console %s %s", request.method, request.url.path)
    return error_page(request, 500, "server error", "Something went wrong on our side; it is logged.")


EXCEPTION_HANDLERS = {
    GatewayError: _gateway_error,
    StoreError: _store_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
