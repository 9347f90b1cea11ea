"""Console page for the vault's connections (contract §8): the list, a form to add one, and
deletion; all through admin.vault_actions, as the API. Never a token: users' credentials are
not shown here, and a connection's client secret is write-only (sealed at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may
from gateway.admin.vault_actions import VaultActions
from gateway.console import web
from gateway.console.sessions import Session

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

PAGE = 50
# The form's fields carry the admin API's names; lists are typed as text.
FIELDS = ("connectionId", "name", "authorizationUrl", "tokenUrl", "revocationUrl", "clientId", "clientSecret")


def connection_body(data: dict[str, str]) -> dict[str, Any]:
    """POST /v1/connections's body from the form (empty fields left out)."""
    body: dict[str, Any] = {name: data[name].strip() for name in FIELDS if data.get(name, "").strip()}
    body["scopes"] = web.lines(data.get("scopes", "").replace(" ", "\n"))
    body["allowedRedirects"] = web.lines(data.get("allowedRedirects", ""))
    return body


def routes(console: ConsoleApp) -> list[Route]:
    identity = console.runtime.identity
    actions = VaultActions(identity.store, identity.vault, identity.login)

    async def list_page(request: Request, session: Session, data: dict[str, str]) -> Response:
        after = request.query_params.get("after", "")[:128]
        found, next_after = await actions.list_connections(session.caller, after, PAGE)
        return web.page(
            request,
            "connections.html",
            nav="connections",
            connections=found,
            next_after=next_after,
            first_page=not after,
            may_write=may(session.caller, "connections", "write"),
        )

    async def create(request: Request, session: Session, data: dict[str, str]) -> Response:
        await actions.put_connection(session.caller, None, connection_body(data))
        return console.redirect("connections")

    async def delete(request: Request, session: Session, data: dict[str, str]) -> Response:
        await actions.delete_connection(session.caller, request.path_params["ref"])
        return console.redirect("connections")

    return [
        Route("/connections", console.signed_in(list_page), methods=["GET"]),
        Route("/connections", console.signed_in(create), methods=["POST"]),
        Route("/connections/{ref}/delete", console.signed_in(delete), methods=["POST"]),
    ]
