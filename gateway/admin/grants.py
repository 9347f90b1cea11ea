"""Admin API: roles, access records, the authorization check and the audit log (contract §6, §7).

A record or role may confer only what its writer holds with `grant: true` (so an admin can never
hand out more than it has), and tenant admins write neither.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import Caller, caller_of, json_body, page, page_args, require
from gateway.errors import AccessDenied, ConflictError, InvalidRequest, NotFound
from gateway.identity import service
from gateway.identity.models import Record, Role
from gateway.runtime import Runtime
from gateway.store import Conflict, Missing, Store


def _no_tenant(caller: Caller) -> None:
    if caller.tenant is not None:
        raise AccessDenied("tenant admins cannot write roles or records")


def _may_confer_role(caller: Caller, role: Role) -> None:
    for permission in role.permissions:
        if permission.allow and not caller.grants.can_confer_action(permission.action):
            raise AccessDenied(f"you cannot confer {permission.action}: you do not hold it with grant: true")


def _may_confer_record(caller: Caller, record: Record, store: Store) -> None:
    roles = store.get_roles(r for s in record.statements for r in s.roles)
    for i, statement in enumerate(record.statements):
        for role_id in statement.roles:
            role = roles.get(role_id)
            if role is None:
                raise InvalidRequest(f"statements[{i}].roles: no role {role_id}")
            for permission in role.permissions:
                if not permission.allow:
                    continue
                for resource in statement.resources:
                    if caller.grants.find(permission.action, resource, need_grant=True) is None:
                        raise AccessDenied(
                            f"you cannot confer {permission.action} on {resource}: you do not hold it with grant: true"
                        )


def routes(runtime: Runtime) -> list[Route]:
    assert runtime.identity is not None
    store = runtime.identity.store
    directory = runtime.identity.directory

    def collection_routes(
        collection: str,
        plural: str,
        listing: Callable[[str, int], list[Any]],
        getter: Callable[[str], Any],
        deleter: Callable[[str, str], None],
        render: Callable[[Any], dict[str, Any]],
        key: Callable[[Any], str],
    ) -> list[Route]:
        """List (paged by id), get and delete for roles and records; writes differ (they must
        pass the "confer only what you hold" check) and are defined apart."""
        noun = collection[:-1]

        async def list_(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            require(caller, collection, "read")
            cursor, limit = page_args(request)
            items = await asyncio.to_thread(listing, cursor, limit + 1)
            more = len(items) > limit
            items = items[:limit]
            return JSONResponse(page(plural, [render(i) for i in items], key(items[-1]) if more else None))

        async def get(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            ref = request.path_params["ref"]
            require(caller, collection, "read", ref)
            item = await asyncio.to_thread(getter, ref)
            if item is None:
                raise NotFound(f"no {noun} {ref}")
            return JSONResponse(render(item))

        async def delete(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            ref = request.path_params["ref"]
            require(caller, collection, "write", ref)
            _no_tenant(caller)
            try:
                await asyncio.to_thread(deleter, ref, caller.actor)
            except Missing:
                raise NotFound(f"no {noun} {ref}") from None
            return Response(status_code=204)

        return [
            Route(f"/v1/{collection}", list_, methods=["GET"]),
            Route(f"/v1/{collection}/{{ref}}", get, methods=["GET"]),
            Route(f"/v1/{collection}/{{ref}}", delete, methods=["DELETE"]),
        ]

    # --- roles ----------------------------------------------------------------------------

    async def put_role(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        creating = request.method == "POST"
        role_id = None if creating else request.path_params["ref"]
        require(caller, "roles", "write", role_id)
        _no_tenant(caller)
        role = service.role_from(await json_body(request), role_id)
        _may_confer_role(caller, role)
        try:
            role = await asyncio.to_thread(store.put_role, role, caller.actor, creating)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        return JSONResponse(service.render_role(role), status_code=201 if creating else 200)

    # --- records --------------------------------------------------------------------------

    async def put_record(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        creating = request.method == "POST"
        record_id = None if creating else request.path_params["ref"]
        require(caller, "records", "write", record_id)
        _no_tenant(caller)
        record = service.record_from(await json_body(request), record_id, caller.actor)
        await asyncio.to_thread(_may_confer_record, caller, record, store)
        try:
            record = await asyncio.to_thread(store.put_record, record, caller.actor, creating)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None
        return JSONResponse(service.render_record(record), status_code=201 if creating else 200)

    # --- the authorization check ------------------------------------------------------------

    async def check(request: Request) -> Response:
        """GET /v1/users/{userId}/resources/{resourceUri}/permissions/{permission}: 200 when
        allowed, 404 when not (what Authress's authorizeUser expects). Parsed from the raw path:
        resourceUri arrives as one segment with its slashes encoded (%2F), decoded once here."""
        caller = await caller_of(request, runtime)
        segments = request.scope["raw_path"].decode("latin-1").split("/")
        if (
            len(segments) != 8
            or segments[1:3] != ["v1", "users"]
            or segments[4] != "resources"
            or segments[6] != "permissions"
        ):
            raise NotFound("no such endpoint")
        user_id, resource, permission = (unquote(s) for s in (segments[3], segments[5], segments[7]))
        if not user_id or not resource or not permission:
            raise InvalidRequest("userId, resourceUri and permission are required")
        if user_id != caller.client_id:
            require(caller, "authorization", "read")
            if caller.tenant is not None:
                other = await directory.client(user_id)
                if other is None or other.tenant != caller.tenant:
                    raise NotFound(f"no user {user_id}")
        grants = caller.grants if user_id == caller.client_id else await directory.grant_set(user_id)
        grant = grants.find(permission, resource)
        if grant is None:
            raise NotFound("the user does not have this permission on this resource")
        return JSONResponse(
            {"userId": user_id, "resourceUri": resource, "permission": permission, "allowed": True}
        )

    # --- audit ----------------------------------------------------------------------------

    async def audit(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        require(caller, "audit", "read")
        if caller.tenant is not None:
            raise AccessDenied("tenant admins cannot read the gateway's audit log")
        cursor, limit = page_args(request, maximum=500)
        try:
            before = int(cursor) if cursor else None
        except ValueError:
            raise InvalidRequest("cursor: not a cursor this endpoint gave") from None
        entries = await asyncio.to_thread(store.list_audit, before, limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        items = [
            {
                "id": e.id,
                "time": e.at,
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            }
            for e in entries
        ]
        return JSONResponse(page("auditEntries", items, str(entries[-1].id) if more else None))

    return [
        Route("/v1/roles", put_role, methods=["POST"]),
        Route("/v1/roles/{ref}", put_role, methods=["PUT"]),
        *collection_routes(
            "roles",
            "roles",
            store.list_roles,
            store.get_role,
            store.delete_role,
            service.render_role,
            lambda r: r.role_id,
        ),
        Route("/v1/records", put_record, methods=["POST"]),
        Route("/v1/records/{ref}", put_record, methods=["PUT"]),
        *collection_routes(
            "records",
            "records",
            store.list_records,
            store.get_record,
            store.delete_record,
            service.render_record,
            lambda r: r.record_id,
        ),
        Route("/v1/users/{rest:path}", check, methods=["GET"]),
        Route("/v1/audit", audit, methods=["GET"]),
    ]
