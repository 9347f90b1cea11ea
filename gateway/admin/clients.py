"""Admin API: service clients and their access keys (contract §7)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import Caller, caller_of, json_body, page, page_args, require
from gateway.errors import AccessDenied, ConflictError, NotFound
from gateway.identity import service
from gateway.identity.models import Client
from gateway.runtime import Runtime
from gateway.store import Conflict, Missing


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
        return JSONResponse(service.render_client(client, []), status_code=201)

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

    async def client_call(request: Request, action: str) -> tuple[Caller, str]:
        """The caller of an endpoint under /v1/clients/{id}, allowed to `action` that client."""
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        require(caller, "clients", action, client_id)
        await visible_client(caller, client_id)
        return caller, client_id

    def credential_routes(
        path: str,
        plural: str,
        make: Callable[[str, dict[str, Any]], tuple[Any, dict[str, Any]]],
        add: Callable[[Any, str], Any],
        listing: Callable[[str], list[Any]],
        revoke: Callable[[str, str, str], None],
        render: Callable[[Any], dict[str, Any]],
    ) -> list[Route]:
        """Create (201, the secret part shown once), list (active, no secrets) and revoke (204)
        for one kind of client credential: access keys, client secrets, registered public keys."""

        async def create_(request: Request) -> Response:
            caller, client_id = await client_call(request, "write")
            body = await json_body(request)
            model, shown_once = make(client_id, body)
            try:
                await asyncio.to_thread(add, model, caller.actor)
            except Conflict as exc:
                raise ConflictError(str(exc)) from None
            except Missing:
                raise NotFound(f"no client {client_id}") from None
            # A secret part exists only in this response: it is neither stored nor logged.
            return JSONResponse(shown_once, status_code=201, headers={"cache-control": "no-store"})

        async def list_(request: Request) -> Response:
            _, client_id = await client_call(request, "read")
            found = await asyncio.to_thread(listing, client_id)
            return JSONResponse({plural: [render(item) for item in found]})

        async def revoke_(request: Request) -> Response:
            caller, client_id = await client_call(request, "write")
            ref = request.path_params["ref"]
            try:
                await asyncio.to_thread(revoke, client_id, ref, caller.actor)
            except Missing:
                raise NotFound(f"no active {path[:-1].replace('-', ' ')} {ref}") from None
            return Response(status_code=204)

        return [
            Route(f"/v1/clients/{{client_id}}/{path}", create_, methods=["POST"]),
            Route(f"/v1/clients/{{client_id}}/{path}", list_, methods=["GET"]),
            Route(f"/v1/clients/{{client_id}}/{path}/{{ref}}", revoke_, methods=["DELETE"]),
        ]

    def make_key(client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        key, access_key = service.new_access_key(client_id, account_id)
        return key, service.render_key(key, access_key)

    def make_secret(client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        secret, shown_once = service.new_client_secret(client_id)
        return secret, service.render_secret(secret, shown_once)

    def make_public_key(client_id: str, body: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        key = service.new_public_key(client_id, body)
        return key, service.render_public_key(key)

    return [
        *credential_routes(
            "access-keys",
            "accessKeys",
            make_key,
            store.create_access_key,
            store.list_access_keys,
            store.revoke_access_key,
            service.render_key,
        ),
        *credential_routes(
            "secrets",
            "secrets",
            make_secret,
            store.create_client_secret,
            store.list_client_secrets,
            store.revoke_client_secret,
            service.render_secret,
        ),
        *credential_routes(
            "public-keys",
            "publicKeys",
            make_public_key,
            store.add_public_key,
            store.list_public_keys,
            store.revoke_public_key,
            service.render_public_key,
        ),
        Route("/v1/clients", create, methods=["POST"]),
        Route("/v1/clients", list_, methods=["GET"]),
        Route("/v1/clients/{client_id}", get, methods=["GET"]),
        Route("/v1/clients/{client_id}", update, methods=["PUT", "PATCH"]),
        Route("/v1/clients/{client_id}", delete, methods=["DELETE"]),
    ]
