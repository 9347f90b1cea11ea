"""Console page for trusted external identities (contract §5): the list, a form to trust a new
issuer's tokens as a client, and deletion; all through admin.identity_actions, as the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from gateway.admin.identity_actions import IdentityActions
from gateway.console.pages.listing import listing_routes
from gateway.errors import InvalidRequest
from gateway.identity.trusted import PRESETS

if TYPE_CHECKING:
    from gateway.console import ConsoleApp


def identity_body(data: dict[str, str]) -> dict[str, Any]:
    """POST /v1/identities's body from the form; conditions are `claim=value` lines."""
    conditions: dict[str, str] = {}
    for line in data.get("conditions", "").splitlines():
        if not line.strip():
            continue
        claim, sep, value = line.partition("=")
        if not sep:
            raise InvalidRequest(f"conditions: {line.strip()!r} is not claim=value")
        conditions[claim.strip()] = value.strip()
    body: dict[str, Any] = {"clientId": data.get("client_id", "").strip(), "conditions": conditions}
    for field, name in (
        ("preset", "preset"),
        ("issuer", "issuer"),
        ("audience", "audience"),
        ("jwksUri", "jwks_uri"),
    ):
        if data.get(name, "").strip():
            body[field] = data[name].strip()
    return body


def routes(console: ConsoleApp) -> list[Route]:
    runtime = console.runtime
    identity = runtime.identity
    actions = IdentityActions(
        identity.store,
        identity.directory,
        identity.verifier,
        identity.configured_identities,
        (runtime.config.public_url, runtime.config.admin_public_url),
    )
    return listing_routes(
        console,
        "identities",
        actions.list,
        lambda caller, data: actions.create(caller, identity_body(data)),
        actions.delete,
        presets=sorted(PRESETS),
    )
