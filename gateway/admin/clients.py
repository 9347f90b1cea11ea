"""Admin API: service clients and their access keys (contract §7). The checks and the work are in
`admin.actions`, shared with the web console; this module is the JSON around them."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.actions import Actions
from gateway.admin.auth import caller_of, json_body, page, page_args, require
from gateway.identity import service
from gateway.runtime import Runtime


def routes(runtime: Runtime, actions: Actions) -> list[Route]:
    store = actions.store

    async def create(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client = await actions.create_client(caller, await json_body(request))
        return JSONResponse(service.render_client(client, []), status_code=201)

    async def list_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        cursor, limit = page_args(request)
        query = request.query_params
        clients, next_cursor = await actions.list_clients(
            caller, cursor, limit, query.get("name") or None, query.get("tenant") or None
        )
        return JSONResponse(page("clients", [service.render_client(c) for c in clients], next_cursor))

    async def get(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        client = await actions.client_call(caller, client_id, "read")
        keys = await asyncio.to_thread(store.list_access_keys, client_id)
        return JSONResponse(service.render_client(client, keys))

    async def update(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)  # refused before the body is read
        body = await json_body(request)
        changed = await actions.update_client(caller, client_id, body, require_name=request.method == "PUT")
        keys = await asyncio.to_thread(store.list_access_keys, client_id)
        return JSONResponse(service.render_client(changed, keys))

    async def delete(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        await actions.delete_client(caller, request.path_params["client_id"])
        return Response(status_code=204)

    def credential_routes(path: str, plural: str) -> list[Route]:
        """Create (201, the secret part shown once), list (active, no secrets) and revoke (204)
        for one kind of client credential: access keys, client secrets, registered public keys."""

        async def create_(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            client_id = request.path_params["client_id"]
            require(caller, "clients", "write", client_id)  # refused before the body is read
            shown_once = await actions.add_credential(caller, path, client_id, await json_body(request))
            # A secret part exists only in this response: it is neither stored nor logged.
            return JSONResponse(shown_once, status_code=201, headers={"cache-control": "no-store"})

        async def list_(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            found = await actions.list_credentials(caller, path, request.path_params["client_id"])
            return JSONResponse({plural: found})

        async def revoke_(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            client_id, ref = request.path_params["client_id"], request.path_params["ref"]
            await actions.revoke_credential(caller, path, client_id, ref)
            return Response(status_code=204)

        return [
            Route(f"/v1/clients/{{client_id}}/{path}", create_, methods=["POST"]),
            Route(f"/v1/clients/{{client_id}}/{path}", list_, methods=["GET"]),
            Route(f"/v1/clients/{{client_id}}/{path}/{{ref}}", revoke_, methods=["DELETE"]),
        ]

    return [
        *credential_routes("access-keys", "accessKeys"),
        *credential_routes("secrets", "secrets"),
        *credential_routes("public-keys", "publicKeys"),
        Route("/v1/clients", create, methods=["POST"]),
        Route("/v1/clients", list_, methods=["GET"]),
        Route("/v1/clients/{client_id}", get, methods=["GET"]),
        Route("/v1/clients/{client_id}", update, methods=["PUT", "PATCH"]),
        Route("/v1/clients/{client_id}", delete, methods=["DELETE"]),
    ]
