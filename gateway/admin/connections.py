"""Admin API: vault connections and users' credentials (contract §8): the JSON around
gateway.admin.vault_actions, which makes the permission checks."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import caller_of, json_body
from gateway.admin.collection import object_routes
from gateway.admin.vault_actions import VaultActions
from gateway.runtime import Runtime
from gateway.vault_models import render_connection

# Answers that carry a token are never kept by a cache (RFC 6749 §5.1 asks the same).
_NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}


def routes(runtime: Runtime, actions: VaultActions) -> list[Route]:
    async def credentials(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        connection_id, user_id = request.path_params["connection_id"], request.path_params["user_id"]
        if request.method == "GET":
            token = await actions.credentials(caller, connection_id, user_id)
            return JSONResponse(token.render(time.time()), headers=_NO_STORE)
        if request.method == "PUT":
            await actions.put_credentials(caller, connection_id, user_id, await json_body(request))
        else:
            await actions.delete_credentials(caller, connection_id, user_id)
        return Response(status_code=204)

    async def authorize(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        url = await actions.authorize(
            caller,
            request.path_params["connection_id"],
            request.path_params["user_id"],
            await json_body(request),
        )
        return JSONResponse({"authorizationUrl": url}, headers=_NO_STORE)

    users = "/v1/connections/{connection_id}/users/{user_id}"
    return [
        *object_routes(
            runtime,
            "connections",
            render_connection,
            actions.list_connections,
            actions.get_connection,
            actions.put_connection,
            actions.delete_connection,
        ),
        Route(f"{users}/credentials", credentials, methods=["GET", "PUT", "DELETE"]),
        Route(f"{users}/authorize", authorize, methods=["POST"]),
    ]
