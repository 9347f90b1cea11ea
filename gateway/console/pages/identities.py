"""Console page for trusted external identities (contract §5): the list, a form to trust a new
issuer's tokens as a client, and deletion; all through admin.identity_actions, as the API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may
from gateway.admin.identity_actions import IdentityActions
from gateway.console import web
from gateway.console.sessions import Session
from gateway.errors import InvalidRequest
from gateway.identity.trusted import PRESETS

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

PAGE = 50


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

    async def list_page(request: Request, session: Session, data: dict[str, str]) -> Response:
        after = request.query_params.get("after", "")[:128]
        entries, next_after = await actions.list(session.caller, after, PAGE)
        return web.page(
            request,
            "identities.html",
            nav="identities",
            entries=entries,
            next_after=next_after,
            first_page=not after,
            presets=sorted(PRESETS),
            may_write=may(session.caller, "identities", "write"),
        )

    async def create(request: Request, session: Session, data: dict[str, str]) -> Response:
        await actions.create(session.caller, identity_body(data))
        return console.redirect("identities")

    async def delete(request: Request, session: Session, data: dict[str, str]) -> Response:
        await actions.delete(session.caller, request.path_params["ref"])
        return console.redirect("identities")

    return [
        Route("/identities", console.signed_in(list_page), methods=["GET"]),
        Route("/identities", console.signed_in(create), methods=["POST"]),
        Route("/identities/{ref}/delete", console.signed_in(delete), methods=["POST"]),
    ]
