"""Console page for the vault's connections (contract §8): the list, a form to add one, and
deletion; all through admin.vault_actions, as the API. Never a token: users' credentials are
not shown here, and a connection's client secret is write-only (sealed at once)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from gateway.admin.vault_actions import VaultActions
from gateway.console import web
from gateway.console.pages.listing import listing_routes

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

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
    return listing_routes(
        console,
        "connections",
        actions.list_connections,
        lambda caller, data: actions.put_connection(caller, None, connection_body(data)),
        actions.delete_connection,
    )
