"""Console pages for who may do what: roles, access records, and "Assign permissions" on a
client's page (which writes an access record, as POST /v1/records does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may
from gateway.console import web
from gateway.console.sessions import Session
from gateway.errors import InvalidRequest

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

PAGE = 50


def role_body(data: dict[str, str]) -> dict[str, Any]:
    """POST /v1/roles's body from the role form: one action per line; `grant` ticked gives
    the holders the right to hand the actions on."""
    grant = data.get("grant") == "yes"
    actions = web.lines(data.get("actions", ""))
    if not actions:
        raise InvalidRequest("permissions: give at least one action")
    return {
        "roleId": data.get("role_id", "").strip(),
        "name": data.get("name", "").strip() or None,
        "permissions": [{"action": a, "allow": True, "grant": grant, "delegate": grant} for a in actions],
    }


def routes(console: ConsoleApp) -> list[Route]:
    actions = console.actions
    store = actions.store

    def collection_page(collection: str, template: str, listing: Any) -> Any:
        async def list_page(request: Request, session: Session, data: dict[str, str]) -> Response:
            after = request.query_params.get("after", "")[:128]
            items, more = await actions.list_of(session.caller, collection, listing, after, PAGE)
            return web.page(
                request,
                template,
                nav=collection,
                items=items,
                next_after=(items[-1].role_id if collection == "roles" else items[-1].record_id)
                if more
                else None,
                first_page=not after,
                may_write=session.caller.tenant is None and may(session.caller, collection, "write"),
            )

        return list_page

    async def create_role(request: Request, session: Session, data: dict[str, str]) -> Response:
        await actions.put_role(session.caller, role_body(data), None, creating=True)
        return console.redirect("roles")

    def deleter(collection: str, delete: Any) -> Any:
        async def delete_one(request: Request, session: Session, data: dict[str, str]) -> Response:
            await actions.delete_one(session.caller, collection, delete, request.path_params["ref"])
            back = data.get("back", "")
            # Only back to a page of the console (never an address the form could name).
            return console.redirect(back if back.startswith("clients/") else collection)

        return delete_one

    async def assign(request: Request, session: Session, data: dict[str, str]) -> Response:
        client_id = request.path_params["client_id"]
        client = await actions.client_call(session.caller, client_id, "read")
        role_id = data.get("role", "").strip()
        resources = web.lines(data.get("resources", ""))
        if not role_id:
            raise InvalidRequest("role: pick a role")
        if not resources:
            raise InvalidRequest("resources: give at least one resource, such as /users/1")
        body = {
            "name": data.get("name", "").strip() or f"{client.name}: {role_id}",
            "users": [{"userId": client_id}],
            "statements": [{"roles": [role_id], "resources": [{"resourceUri": r} for r in resources]}],
        }
        await actions.put_record(session.caller, body, None, creating=True)
        return console.redirect(f"clients/{client_id}")

    return [
        Route(
            "/roles",
            console.signed_in(collection_page("roles", "roles.html", store.list_roles)),
            methods=["GET"],
        ),
        Route("/roles", console.signed_in(create_role), methods=["POST"]),
        Route(
            "/roles/{ref}/delete", console.signed_in(deleter("roles", store.delete_role)), methods=["POST"]
        ),
        Route(
            "/records",
            console.signed_in(collection_page("records", "records.html", store.list_records)),
            methods=["GET"],
        ),
        Route(
            "/records/{ref}/delete",
            console.signed_in(deleter("records", store.delete_record)),
            methods=["POST"],
        ),
        Route("/clients/{client_id}/permissions", console.signed_in(assign), methods=["POST"]),
    ]
