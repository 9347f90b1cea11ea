"""Admin API: service clients and their access keys (contract §7)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import Caller, caller_of, json_body, page, page_args, require
from gateway.errors import AccessDenied, GatewayError, NotFound
from gateway.identity import service
from gateway.identity.models import Client
from gateway.runtime import Runtime
from gateway.store import Conflict, Missing


class ConflictError(GatewayError):
    status = 409
    error = "conflict"
    default_description = "conflict"


def routes(runtime: Runtime) -> list[Route]:
    assert runtime.identity is not None
    store = runtime.identity.store
    account_id = runtime.config.account_id

    async def visible_client(caller: Caller, client_id: str) -> Client:
        """The client, when it exists and the caller's tenant (if any) owns it; else 404."""
        client = await asyncio.to_thread(store.get_client, client_id)
        if client is None or (caller.tenant is not None and client.tenant != caller.tenant):
            raise NotFound(f"no client {client_id}")
        return client

    def tenant_may_set(caller: Caller, client: Client) -> None:
        # A tenant admin hands its clients only scopes and audiences it holds itself.
        if caller.tenant is None:
            return
        extra = [s for s in client.scopes if s not in caller.identity.scopes]
        extra += [a for a in client.audiences if a not in caller.identity.audiences]
        if extra:
            raise AccessDenied(f"a tenant admin cannot give {extra[0]!r}, which it does not hold")

    async def create(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        require(caller, "clients", "write")
        client = service.new_client(await json_body(request), caller.tenant)
        tenant_may_set(caller, client)
        await asyncio.to_thread(store.create_client, client, caller.actor)
        return JSONResponse(service.render_client(client), status_code=201)

    async def list_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        require(caller, "clients", "read")
        cursor, limit = page_args(request)
        clients = await asyncio.to_thread(store.list_clients, caller.tenant, cursor, limit + 1)
        more = len(clients) > limit
        clients = clients[:limit]
        return JSONResponse(
            page(
                "clients",
                [service.render_client(c) for c in clients],
                clients[-1].client_id if more else None,
            )
        )

    async def get(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "read", client_id)
        client = await visible_client(caller, client_id)
        keys = await asyncio.to_thread(store.list_access_keys, client_id)
        return JSONResponse(service.render_client(client, keys))

    async def update(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)
        body = await json_body(request)
        client = await visible_client(caller, client_id)
        changed = service.updated_client(client, body, require_name=request.method == "PUT")
        tenant_may_set(caller, changed)
        try:
            await asyncio.to_thread(store.update_client, changed, caller.actor)
        except Missing:
            raise NotFound(f"no client {client_id}") from None
        keys = await asyncio.to_thread(store.list_access_keys, client_id)
        return JSONResponse(service.render_client(changed, keys))

    async def delete(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        try:
            await asyncio.to_thread(store.delete_client, client_id, caller.actor)
        except Missing:
            raise NotFound(f"no client {client_id}") from None
        return Response(status_code=204)

    async def create_key(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        key, access_key = service.new_access_key(client_id, account_id)
        try:
            await asyncio.to_thread(store.create_access_key, key, caller.actor)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        except Missing:
            raise NotFound(f"no client {client_id}") from None
        # The private half exists only in this response: it is neither stored nor logged.
        response = JSONResponse(service.render_key(key, access_key), status_code=201)
        response.headers["cache-control"] = "no-store"
        return response

    async def list_keys(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "read", client_id)
        await visible_client(caller, client_id)
        keys = await asyncio.to_thread(store.list_access_keys, client_id)
        return JSONResponse({"accessKeys": [service.render_key(k) for k in keys]})

    async def revoke_key(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id, key_id = request.path_params["client_id"], request.path_params["key_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        try:
            await asyncio.to_thread(store.revoke_access_key, client_id, key_id, caller.actor)
        except Missing:
            raise NotFound(f"no active key {key_id}") from None
        return Response(status_code=204)

    async def create_secret(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        secret, shown_once = service.new_client_secret(client_id)
        try:
            await asyncio.to_thread(store.create_client_secret, secret, caller.actor)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        response = JSONResponse(service.render_secret(secret, shown_once), status_code=201)
        response.headers["cache-control"] = "no-store"
        return response

    async def list_secrets(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "read", client_id)
        await visible_client(caller, client_id)
        found = await asyncio.to_thread(store.list_client_secrets, client_id)
        return JSONResponse({"secrets": [service.render_secret(s) for s in found]})

    async def revoke_secret(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id, secret_id = request.path_params["client_id"], request.path_params["secret_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        try:
            await asyncio.to_thread(store.revoke_client_secret, client_id, secret_id, caller.actor)
        except Missing:
            raise NotFound(f"no active secret {secret_id}") from None
        return Response(status_code=204)

    async def add_public_key(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "write", client_id)
        body = await json_body(request)
        await visible_client(caller, client_id)
        key = service.new_public_key(client_id, body)
        try:
            await asyncio.to_thread(store.add_public_key, key, caller.actor)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        return JSONResponse(service.render_public_key(key), status_code=201)

    async def list_public_keys(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", "read", client_id)
        await visible_client(caller, client_id)
        found = await asyncio.to_thread(store.list_public_keys, client_id)
        return JSONResponse({"publicKeys": [service.render_public_key(k) for k in found]})

    async def revoke_public_key(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id, key_id = request.path_params["client_id"], request.path_params["key_id"]
        require(caller, "clients", "write", client_id)
        await visible_client(caller, client_id)
        try:
            await asyncio.to_thread(store.revoke_public_key, client_id, key_id, caller.actor)
        except Missing:
            raise NotFound(f"no active public key {key_id}") from None
        return Response(status_code=204)

    return [
        Route("/v1/clients/{client_id}/secrets", create_secret, methods=["POST"]),
        Route("/v1/clients/{client_id}/secrets", list_secrets, methods=["GET"]),
        Route("/v1/clients/{client_id}/secrets/{secret_id}", revoke_secret, methods=["DELETE"]),
        Route("/v1/clients/{client_id}/public-keys", add_public_key, methods=["POST"]),
        Route("/v1/clients/{client_id}/public-keys", list_public_keys, methods=["GET"]),
        Route("/v1/clients/{client_id}/public-keys/{key_id}", revoke_public_key, methods=["DELETE"]),
        Route("/v1/clients", create, methods=["POST"]),
        Route("/v1/clients", list_, methods=["GET"]),
        Route("/v1/clients/{client_id}", get, methods=["GET"]),
        Route("/v1/clients/{client_id}", update, methods=["PUT", "PATCH"]),
        Route("/v1/clients/{client_id}", delete, methods=["DELETE"]),
        Route("/v1/clients/{client_id}/access-keys", create_key, methods=["POST"]),
        Route("/v1/clients/{client_id}/access-keys", list_keys, methods=["GET"]),
        Route("/v1/clients/{client_id}/access-keys/{key_id}", revoke_key, methods=["DELETE"]),
    ]
