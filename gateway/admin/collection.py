"""The five routes of an admin collection whose service layer takes whole objects (contract §7):
`GET|POST /v1/<collection>` and `GET|PUT|DELETE /v1/<collection>/{id}`. Trusted identities and
vault connections are served this way; the JSON is the same for both, only the calls differ."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.auth import Caller, caller_of, json_body, page, page_args, require
from gateway.runtime import Runtime

T = TypeVar("T")


def object_routes(
    runtime: Runtime,
    collection: str,
    render: Callable[[T], dict[str, Any]],
    listing: Callable[[Caller, str, int], Awaitable[tuple[Sequence[T], str | None]]],
    get: Callable[[Caller, str], Awaitable[T]],
    put: Callable[[Caller, str | None, dict[str, Any]], Awaitable[T]],
    delete: Callable[[Caller, str], Awaitable[None]],
) -> list[Route]:
    """`put` creates (POST, object id None: 201) or replaces (PUT: 200). The calls check the
    caller's permissions themselves; a write is also refused before its body is read."""

    async def list_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        cursor, limit = page_args(request)
        items, next_cursor = await listing(caller, cursor, limit)
        return JSONResponse(page(collection, [render(i) for i in items], next_cursor))

    async def get_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        return JSONResponse(render(await get(caller, request.path_params["ref"])))

    async def put_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        object_id = None if request.method == "POST" else request.path_params["ref"]
        require(caller, collection, "write", object_id)  # refused before the body is read
        item = await put(caller, object_id, await json_body(request))
        return JSONResponse(render(item), status_code=201 if object_id is None else 200)

    async def delete_(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        await delete(caller, request.path_params["ref"])
        return Response(status_code=204)

    return [
        Route(f"/v1/{collection}", list_, methods=["GET"]),
        Route(f"/v1/{collection}", put_, methods=["POST"]),
        Route(f"/v1/{collection}/{{ref}}", get_, methods=["GET"]),
        Route(f"/v1/{collection}/{{ref}}", put_, methods=["PUT"]),
        Route(f"/v1/{collection}/{{ref}}", delete_, methods=["DELETE"]),
    ]
