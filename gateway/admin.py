"""The admin listener: health, readiness and metrics (the admin API joins here, contract §7)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.metrics import exposition
from gateway.runtime import Runtime
from gateway.web import EXCEPTION_HANDLERS


def admin_app(runtime: Runtime) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        if not runtime.ready:
            return JSONResponse({"status": "starting"}, status_code=503)
        policy = runtime.policy.current
        return JSONResponse(
            {"status": "ready", "routes": len(policy.routes), "upstreams": len(policy.upstreams)}
        )

    async def metrics(request: Request) -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
    )


def public_own_app(runtime: Runtime) -> Starlette:
    """The gateway's own endpoints on the public listener (discovery, JWKS, /oauth/*): the token
    server adds its routes here; until then every own path answers 404 in the contract's shape."""
    return Starlette(routes=[], exception_handlers=EXCEPTION_HANDLERS)
