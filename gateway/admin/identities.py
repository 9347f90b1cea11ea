"""Admin API: trusted identities, `/v1/identities` (contract §5). The checks and the work are in
`admin.identity_actions`, shared with the web console; this module is the JSON around them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import caller_of, json_body, page, page_args, require
from gateway.admin.identity_actions import IdentityActions
from gateway.identity.trusted import render_identity
from gateway.runtime import Runtime


def routes(runtime: Runtime, actions: IdentityActions) -> list[Route]:
    async def create(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        require(caller, "identities", "write")  # refused before the body is read
        entry = await actions.create(caller, await json_body(request))
        return JSONResponse(render_identity(entry), status_code=201)

    async def list_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        cursor, limit = page_args(request)
        entries, next_cursor = await actions.list(caller, cursor, limit)
        return JSONResponse(page("identities", [render_identity(e) for e in entries], next_cursor))

    async def get(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        return JSONResponse(render_identity(await actions.get(caller, request.path_params["identity_id"])))

    async def replace(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        identity_id = request.path_params["identity_id"]
        require(caller, "identities", "write", identity_id)  # refused before the body is read
        entry = await actions.replace(caller, identity_id, await json_body(request))
        return JSONResponse(render_identity(entry))

    async def delete(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        await actions.delete(caller, request.path_params["identity_id"])
        return Response(status_code=204)

    return [
        Route("/v1/identities", create, methods=["POST"]),
        Route("/v1/identities", list_, methods=["GET"]),
        Route("/v1/identities/{identity_id}", get, methods=["GET"]),
        Route("/v1/identities/{identity_id}", replace, methods=["PUT"]),
        Route("/v1/identities/{identity_id}", delete, methods=["DELETE"]),
    ]
