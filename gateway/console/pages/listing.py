"""A page that lists one collection, a page of entries at a time, with a form to add an entry
and a delete button on each: what the trusted identities and connections pages share. The
service layer (admin.identity_actions, admin.vault_actions) makes every permission check; the
page only decides what to offer (`may_write`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may
from gateway.admin.auth import Caller
from gateway.console import web
from gateway.console.sessions import Session

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

PAGE = 50
Listing = Callable[[Caller, str, int], Awaitable[tuple[Sequence[Any], str | None]]]
Create = Callable[[Caller, dict[str, str]], Awaitable[object]]
Delete = Callable[[Caller, str], Awaitable[object]]


def listing_routes(
    console: ConsoleApp, collection: str, listing: Listing, create: Create, delete: Delete, **context: Any
) -> list[Route]:
    """GET /<collection> (template `<collection>.html` with `items`, `next_after`, `first_page`,
    `may_write` and `context`), POST /<collection> (create from the form) and POST
    /<collection>/{ref}/delete; both POSTs go back to the list."""

    async def list_page(request: Request, session: Session, data: dict[str, str]) -> Response:
        after = request.query_params.get("after", "")[:128]
        items, next_after = await listing(session.caller, after, PAGE)
        return web.page(
            request,
            f"{collection}.html",
            nav=collection,
            items=items,
            next_after=next_after,
            first_page=not after,
            may_write=may(session.caller, collection, "write"),
            **context,
        )

    async def create_one(request: Request, session: Session, data: dict[str, str]) -> Response:
        await create(session.caller, data)
        return console.redirect(collection)

    async def delete_one(request: Request, session: Session, data: dict[str, str]) -> Response:
        await delete(session.caller, request.path_params["ref"])
        return console.redirect(collection)

    return [
        Route(f"/{collection}", console.signed_in(list_page), methods=["GET"]),
        Route(f"/{collection}", console.signed_in(create_one), methods=["POST"]),
        Route(f"/{collection}/{{ref}}/delete", console.signed_in(delete_one), methods=["POST"]),
    ]
