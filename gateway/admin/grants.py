"""Admin API: roles, access records, the authorization check and the audit log (contract §6, §7).

A record or role may confer only what its writer holds with `grant: true` (so an admin can never
hand out more than it has), and tenant admins write neither. The checks and the work are in
`admin.actions`, shared with the web console; this module is the JSON around them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.actions import Actions, no_tenant
from gateway.admin.auth import caller_of, json_body, page, page_args, require
from gateway.errors import InvalidRequest, NotFound
from gateway.identity import service
from gateway.paths import check_resource, check_segment
from gateway.runtime import Runtime


def routes(runtime: Runtime, actions: Actions) -> list[Route]:
    store = actions.store

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

        async def list_(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            require(caller, collection, "read")
            cursor, limit = page_args(request)
            items, more = await actions.list_of(caller, collection, listing, cursor, limit)
            return JSONResponse(page(plural, [render(i) for i in items], key(items[-1]) if more else None))

        async def get(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            item = await actions.get_one(caller, collection, getter, request.path_params["ref"])
            return JSONResponse(render(item))

        async def delete(request: Request) -> Response:
            caller = await caller_of(request, runtime)
            await actions.delete_one(caller, collection, deleter, request.path_params["ref"])
            return Response(status_code=204)

        return [
            Route(f"/v1/{collection}", list_, methods=["GET"]),
            Route(f"/v1/{collection}/{{ref}}", get, methods=["GET"]),
            Route(f"/v1/{collection}/{{ref}}", delete, methods=["DELETE"]),
        ]

    async def put_role(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        creating = request.method == "POST"
        role_id = None if creating else request.path_params["ref"]
        require(caller, "roles", "write", role_id)  # refused before the body is read
        no_tenant(caller)
        role = await actions.put_role(caller, await json_body(request), role_id, creating)
        return JSONResponse(service.render_role(role), status_code=201 if creating else 200)

    async def put_record(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        creating = request.method == "POST"
        record_id = None if creating else request.path_params["ref"]
        require(caller, "records", "write", record_id)
        no_tenant(caller)
        record = await actions.put_record(caller, await json_body(request), record_id, creating)
        return JSONResponse(service.render_record(record), status_code=201 if creating else 200)

    async def check(request: Request) -> Response:
        """GET /v1/users/{userId}/resources/{resourceUri}/permissions/{permission}: 200 when
        allowed, 404 when not (what Authress's authorizeUser expects). Parsed from the raw path:
        resourceUri arrives as one segment with its slashes encoded (%2F), decoded once here.
        The raw path still carries the mount prefix of `admin.public_url`'s path (Starlette's
        `root_path`), which is cut off first (issue 9, defect 4). An ambiguous resource URI or
        user id is a 400, never a match (defect 13)."""
        caller = await caller_of(request, runtime)
        raw = request.scope["raw_path"].decode("latin-1")
        prefix = request.scope.get("root_path", "")
        if prefix and raw.startswith(prefix + "/"):
            raw = raw[len(prefix) :]
        segments = raw.split("/")
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
        check_segment(user_id, "userId")
        check_resource(resource, "resourceUri")
        grants = await actions.grants_of(caller, user_id)
        if grants.find(permission, resource) is None:
            raise NotFound("the user does not have this permission on this resource")
        return JSONResponse(
            {"userId": user_id, "resourceUri": resource, "permission": permission, "allowed": True}
        )

    async def audit(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        require(caller, "audit", "read")
        no_tenant(caller, "read the gateway's audit log")
        cursor, limit = page_args(request, maximum=500)
        try:
            before = int(cursor) if cursor else None
        except ValueError:
            raise InvalidRequest("cursor: not a cursor this endpoint gave") from None
        entries, more = await actions.audit(caller, before, limit)
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
