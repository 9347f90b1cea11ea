"""Console pages for service clients: the list (search, pages, create) and a client's page
(details, access keys, client secrets, public keys, records and effective permissions).

A new access key or client secret is shown once, in the answer to the POST that made it; the
page is `no-store` and nothing of it is kept, so a reload or a later visit shows only its id.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may
from gateway.admin.usage import hour_floor
from gateway.console import web
from gateway.console.sessions import Session
from gateway.errors import InvalidRequest, NotFound

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

PAGE = 25
KINDS = {"keys": "access-keys", "secrets": "secrets", "public-keys": "public-keys"}


def client_body(data: dict[str, str]) -> dict[str, Any]:
    """The admin API's JSON body from the console's client form."""
    body: dict[str, Any] = {
        "name": data.get("name", ""),
        "description": data.get("description", "").strip() or None,
        "scopes": web.lines(data.get("scopes", "")),
        "audiences": web.lines(data.get("audiences", "")),
    }
    if data.get("tenant", "").strip():
        body["tenant"] = data["tenant"].strip()
    lifetime = data.get("token_lifetime", "").strip()
    if lifetime:
        if not lifetime.isdigit():
            raise InvalidRequest("tokenLifetime: expected whole seconds from 60 to 86400")
        body["tokenLifetime"] = int(lifetime)
    return body


def routes(console: ConsoleApp) -> list[Route]:
    actions = console.actions
    store = actions.store

    async def list_page(request: Request, session: Session, data: dict[str, str]) -> Response:
        caller = session.caller
        query = request.query_params.get("q", "").strip()[:200]
        after = request.query_params.get("after", "")[:64]
        found, next_after = await actions.list_clients(caller, after, PAGE, contains=query)
        return web.page(
            request,
            "clients.html",
            nav="clients",
            clients=found,
            query=query,
            next_after=next_after,
            first_page=not after,
            may_create=may(caller, "clients", "write"),
        )

    async def create(request: Request, session: Session, data: dict[str, str]) -> Response:
        client = await actions.create_client(session.caller, client_body(data))
        return console.redirect(f"clients/{client.client_id}")

    async def client_page(request: Request, session: Session, data: dict[str, str]) -> Response:
        return await render_client(request, session, request.path_params["client_id"])

    async def render_client(
        request: Request, session: Session, client_id: str, shown_once: dict[str, Any] | None = None
    ) -> Response:
        caller = session.caller
        client = await actions.client_call(caller, client_id, "read")
        keys = await actions.list_credentials(caller, "access-keys", client_id)
        secrets = await actions.list_credentials(caller, "secrets", client_id)
        public_keys = await actions.list_credentials(caller, "public-keys", client_id)
        # The last 24 hours by route, from the counts the workers write in batches (usage.py).
        now = time.time()
        rows = await asyncio.to_thread(
            store.usage_of, client_id, hour_floor(now - 86400), hour_floor(now + 3600)
        )
        usage: dict[str, list[int]] = {}
        for row in rows:
            totals = usage.setdefault(row.route, [0, 0])
            totals[0] += row.allowed
            totals[1] += row.refused
        records = None
        if caller.tenant is None and may(caller, "records", "read"):
            records = await actions.records_naming(caller, client_id)
        grants = None
        if client_id == caller.client_id or may(caller, "authorization", "read"):
            grants = (await actions.grants_of(caller, client_id, fresh=True)).grants
        writes_grants = caller.tenant is None and may(caller, "records", "write")
        roles = (
            (await actions.list_of(caller, "roles", store.list_roles, "", 200))[0] if writes_grants else []
        )
        return web.page(
            request,
            "client.html",
            nav="clients",
            client=client,
            keys=keys,
            secrets=secrets,
            public_keys=public_keys,
            records=records,
            usage=sorted(usage.items()),
            grants=grants,
            roles=roles,
            shown_once=shown_once,
            replace_url=console.url(f"clients/{client_id}") if shown_once else None,
            may_write=may(caller, "clients", "write", client_id),
            may_assign=writes_grants,
            may_delete_records=writes_grants,
        )

    async def update(request: Request, session: Session, data: dict[str, str]) -> Response:
        client_id = request.path_params["client_id"]
        body = client_body(data)
        body.pop("tenant", None)  # never changes
        body["disabled"] = data.get("disabled") == "yes"
        body.setdefault("tokenLifetime", None)
        await actions.update_client(session.caller, client_id, body, require_name=True)
        return console.redirect(f"clients/{client_id}")

    async def delete(request: Request, session: Session, data: dict[str, str]) -> Response:
        client_id = request.path_params["client_id"]
        if data.get("confirm") != client_id:
            raise InvalidRequest("confirm: type the client id to delete the client")
        await actions.delete_client(session.caller, client_id)
        return console.redirect("clients")

    async def add(request: Request, session: Session, data: dict[str, str]) -> Response:
        client_id, kind = request.path_params["client_id"], kind_of(request)
        body: dict[str, Any] = {}
        if kind == "public-keys":
            body = public_key_body(data.get("key", ""))
        elif data.get("expires_in", "").strip():
            if not data["expires_in"].strip().isdigit():
                raise InvalidRequest("expiresIn: expected whole seconds")
            body["expiresIn"] = int(data["expires_in"])
        made = await actions.add_credential(session.caller, kind, client_id, body)
        if kind == "public-keys":
            return console.redirect(f"clients/{client_id}")
        secret = made.get("accessKey") or made.get("clientSecret")
        noun = "access key" if kind == "access-keys" else "client secret"
        return await render_client(request, session, client_id, {"noun": noun, "secret": secret, **made})

    async def revoke(request: Request, session: Session, data: dict[str, str]) -> Response:
        client_id = request.path_params["client_id"]
        await actions.revoke_credential(
            session.caller, kind_of(request), client_id, request.path_params["ref"]
        )
        return console.redirect(f"clients/{client_id}")

    def kind_of(request: Request) -> str:
        kind = KINDS.get(request.path_params["kind"])
        if kind is None:
            raise NotFound("there is no such page in the console")
        return kind

    return [
        Route("/clients", console.signed_in(list_page), methods=["GET"]),
        Route("/clients", console.signed_in(create), methods=["POST"]),
        Route("/clients/{client_id}", console.signed_in(client_page), methods=["GET"]),
        Route("/clients/{client_id}/update", console.signed_in(update), methods=["POST"]),
        Route("/clients/{client_id}/delete", console.signed_in(delete), methods=["POST"]),
        Route("/clients/{client_id}/{kind}", console.signed_in(add), methods=["POST"]),
        Route("/clients/{client_id}/{kind}/{ref}/revoke", console.signed_in(revoke), methods=["POST"]),
    ]


def public_key_body(text: str) -> dict[str, Any]:
    """A pasted JWK or PEM public key, as the admin API's body for POST …/public-keys."""
    text = text.strip()
    if not text.startswith("{"):
        return {"pem": text}
    try:
        return {"jwk": json.loads(text)}
    except ValueError:
        raise InvalidRequest("key: not valid JSON (paste a JWK or a PEM public key)") from None
