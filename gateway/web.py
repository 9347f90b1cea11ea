"""Starlette glue for the gateway's own endpoints (public discovery/token endpoints, the admin
listener): errors go through the same `errors.render` as the proxy's."""

from __future__ import annotations

import logging
import os

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.errors import (
    GatewayError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    ServerError,
    ServiceUnavailable,
    render,
)
from gateway.pipeline.forward.headers import Inbound, request_id_of
from gateway.store.backend import StoreError

log = logging.getLogger("gateway.web")


def request_id(request: Request) -> str:
    inbound = Inbound(request_id=request.headers.get("x-request-id", "").encode("latin-1") or None)
    return request_id_of(inbound, os.urandom(12).hex().encode()).decode()


def error_response(exc: GatewayError, request: Request) -> Response:
    status, headers, body = render(exc, request_id(request))
    response = Response(body, status_code=status)
    response.raw_headers = headers
    return response


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return error_response(exc, request)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    mapped: GatewayError
    if exc.status_code == 404:
        mapped = NotFound("no such endpoint")
    elif exc.status_code == 405:
        mapped = MethodNotAllowed(allow=(exc.headers or {}).get("Allow", ""))
    elif 400 <= exc.status_code < 500:
        mapped = InvalidRequest()
    else:
        mapped = ServerError()
    return error_response(mapped, request)


async def _store_error(request: Request, exc: Exception) -> Response:
    log.warning("store unavailable during %s: %s", request.method, type(exc).__name__)
    return error_response(ServiceUnavailable(), request)


_LOGGED = "gateway.logged"  # scope key: the catch-all handler has logged this request's error


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error in %s %s", request.method, request.scope.get("route_name", "endpoint"))
    request.scope[_LOGGED] = True
    return error_response(ServerError(), request)


class App(Starlette):
    """Starlette for the gateway's own endpoints. Starlette's ServerErrorMiddleware re-raises an
    error after the catch-all handler has answered 500, so the server would log it a second time
    (issue 9, defect 12); an error our handler has logged stops here. Any other still goes up."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception:
            if not scope.get(_LOGGED):
                raise


EXCEPTION_HANDLERS = {
    GatewayError: _gateway_error,
    StoreError: _store_error,
    HTTPException: _http_exception,
    Exception: _unexpected,
}
