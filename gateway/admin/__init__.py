"""The admin listener: health, readiness, metrics, the admin API (contract §7) and discovery;
and the gateway's own endpoints on the public listener."""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin import clients, connections, grants, identities, usage, wellknown
from gateway.admin.actions import Actions
from gateway.admin.identity_actions import IdentityActions
from gateway.admin.openapi import openapi_document
from gateway.admin.vault_actions import VaultActions
from gateway.config import Limits
from gateway.decisions import PREFIX as DECISIONS_PREFIX
from gateway.decisions import DecisionApp
from gateway.errors import GatewayError, render
from gateway.metrics import exposition
from gateway.oauth import connections as oauth_connections
from gateway.oauth import endpoints as oauth_endpoints
from gateway.pipeline.forward.headers import sort_inbound
from gateway.runtime import Runtime
from gateway.web import EXCEPTION_HANDLERS, App


def admin_app(runtime: Runtime, extra: Sequence[BaseRoute] = ()) -> DecisionApp:
    """The admin listener's app; the forward-auth decision endpoint is answered before Starlette
    routing (it is on the request path of every request a front proxy lets through)."""

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def local_readiness() -> tuple[int, dict[str, object]]:
        """This worker's readiness: the status code and body /readyz would give for it alone."""
        if not runtime.ready:
            return 503, {"status": "starting"}
        if not runtime.identity.directory.following:
            return 503, {"status": "store unreachable"}
        policy = runtime.policy.current
        ready: dict[str, object] = {
            "status": "ready",
            "routes": len(policy.routes),
            "upstreams": len(policy.upstreams),
        }
        if runtime.limits is not None:
            ready["rateLimits"] = limits = runtime.limits.readiness()
            if not limits["reachable"] and limits["failureMode"] == "fail_closed":
                # Every rate-limited request is refused (503) until the backend is back.
                ready["status"] = "rate limit backend unreachable"
                return 503, ready
        return 200, ready

    runtime.ready_check = lambda: local_readiness()[0] == 200

    async def readyz(request: Request) -> Response:
        """Ready when this worker is and every worker of the process group reports ready (a
        heartbeat within 2 s): whichever worker takes the probe speaks for all (defect 9)."""
        status, body = local_readiness()
        if status == 200 and runtime.workers is not None:
            ready, _ = runtime.workers.count()
            body["workers"] = {"ready": ready, "expected": runtime.config.workers}
            if ready < runtime.config.workers:
                body["status"] = "workers not ready"
                status = 503
        return JSONResponse(body, status_code=status)

    async def metrics(request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document(runtime.config.admin_public_url))

    # Probes and metrics stay at the root; the API lives under admin.public_url's path, which is
    # where SDKs configured with that URL send their requests.
    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    api: list[BaseRoute] = [Route("/openapi.json", openapi, methods=["GET"])]
    api += wellknown.routes(runtime, runtime.config.admin_public_url, "")
    actions = Actions(runtime.identity.store, runtime.identity.directory, runtime.config.account_id)
    api += clients.routes(runtime, actions)
    api += grants.routes(runtime, actions)
    api += usage.routes(runtime, actions)
    api += identities.routes(
        runtime,
        IdentityActions(
            runtime.identity.store,
            runtime.identity.directory,
            runtime.identity.verifier,
            runtime.identity.configured_identities,
            (runtime.config.public_url, runtime.config.admin_public_url),
        ),
    )
    vault_actions = VaultActions(runtime.identity.store, runtime.identity.vault, runtime.identity.login)
    api += connections.routes(runtime, vault_actions)
    base_path = urlsplit(runtime.config.admin_public_url).path.rstrip("/")
    api += extra  # the web console, under the same base path
    routes += [Mount(base_path, routes=api)] if base_path else api
    app = App(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    app.add_middleware(HeaderLimits, limits=runtime.config.limits)
    return DecisionApp(runtime, base_path + DECISIONS_PREFIX, other=app)


class HeaderLimits:
    """The proxy's header limits (431) on the admin listener too."""

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            try:
                sort_inbound(scope["headers"], self.limits.max_header_bytes, self.limits.max_headers)
            except GatewayError as exc:
                status, headers, body = render(exc, os.urandom(12).hex())
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def public_own_app(runtime: Runtime) -> Starlette:
    """The gateway's own endpoints on the public listener (discovery and keys now; the token
    server's /oauth/* joins here)."""
    routes: list[BaseRoute] = []
    routes += wellknown.routes(runtime, runtime.config.public_url, runtime.config.public_base_path)
    routes += oauth_endpoints.routes(runtime)
    routes += oauth_connections.routes(runtime)
    return App(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
