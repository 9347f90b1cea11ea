"""Console pages about the gateway as a whole: overview, audit log, policies (with "explain") and
signing keys."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.admin.actions import may, no_tenant
from gateway.admin.auth import require
from gateway.console import web
from gateway.console.sessions import Session
from gateway.errors import AccessDenied, GatewayError, InsufficientScope, InvalidRequest
from gateway.identity.rotation import rotate_now
from gateway.models import Identity
from gateway.paths import canonicalize

if TYPE_CHECKING:
    from gateway.console import ConsoleApp

AUDIT_PAGE = 50
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def routes(console: ConsoleApp) -> list[Route]:
    runtime = console.runtime
    actions = console.actions
    store = runtime.identity.store

    async def overview(request: Request, session: Session, data: dict[str, str]) -> Response:
        caller = session.caller
        counts = None
        if may(caller, "clients", "read"):
            counts = await actions.counts(caller)
        audit = None
        if caller.tenant is None and may(caller, "audit", "read"):
            audit, _ = await actions.audit(caller, None, 10)
        # The whole instance's traffic: not a tenant admin's to see (its clients' pages show theirs).
        traffic = None if caller.tenant is not None else await asyncio.to_thread(runtime.traffic.last_hour)
        return web.page(request, "overview.html", nav="overview", counts=counts, audit=audit, traffic=traffic)

    async def audit_log(request: Request, session: Session, data: dict[str, str]) -> Response:
        params = request.query_params
        filters = {k: params.get(k, "").strip()[:200] for k in ("actor", "action", "target")}
        cursor = params.get("before", "")
        if cursor and not cursor.isdigit():
            raise InvalidRequest("before: not a position this page gave")
        entries, more = await actions.audit(
            session.caller, int(cursor) if cursor else None, AUDIT_PAGE, **filters
        )
        return web.page(
            request,
            "audit.html",
            nav="audit",
            entries=entries,
            filters=filters,
            next_before=entries[-1].id if more else None,
        )

    async def policies(request: Request, session: Session, data: dict[str, str]) -> Response:
        require(session.caller, "policies", "read")
        policy = runtime.policy.current
        explained = None
        params = request.query_params
        asked = {k: params.get(k, "").strip() for k in ("client", "method", "path")}
        if asked["path"]:
            explained = await explain(
                session, asked["client"], asked["method"].upper() or "GET", asked["path"]
            )
        return web.page(
            request,
            "policies.html",
            nav="policies",
            routes=sorted(policy.routes, key=lambda r: (r.template.text, r.id)),
            asked=asked,
            methods=METHODS,
            explained=explained,
            may_explain=may(session.caller, "authorization", "read"),
        )

    async def explain(session: Session, client_id: str, method: str, path: str) -> dict[str, Any]:
        """The decision the proxy would make for this client (authenticated with an access key)
        and request, made by the proxy's own authorizer, and why."""
        if method not in METHODS:
            raise InvalidRequest("method: expected one of " + ", ".join(METHODS))
        try:
            segments, canonical = canonicalize(path.encode())
        except GatewayError as exc:
            return {"decision": "deny", "status": exc.status, "reason": exc.description}
        found: dict[str, Any] = {"method": method, "path": canonical}
        match = runtime.policy.current.table.match(method, segments)
        if match is None:
            return {**found, "decision": "deny", "status": 404, "reason": "no route matches"}
        route = match.route
        found["route"] = route
        if route.public:
            return {**found, "decision": "allow", "status": 200, "reason": "public route (auth: none)"}
        if not client_id:
            raise InvalidRequest("client: the route is protected; name the client to explain it for")
        grants = await actions.grants_of(session.caller, client_id, fresh=True)  # checks who may look
        client = await runtime.identity.directory.client(client_id)
        if client is None or client.disabled:
            reason = "the client does not exist" if client is None else "the client is disabled"
            return {**found, "decision": "deny", "status": 401, "reason": reason}
        identity = Identity(
            "access_key", client.client_id, tenant=client.tenant,
            scopes=frozenset(client.scopes), audiences=frozenset(client.audiences),
        )  # fmt: skip
        try:
            await runtime.authz.authorize(route, identity, match.params)
        except (InsufficientScope, AccessDenied) as exc:
            return {**found, "decision": "deny", "status": exc.status, "reason": exc.description,
                    "grants": grants.grants}  # fmt: skip
        if route.permission is None or route.resource is None:
            return {**found, "decision": "allow", "status": 200, "reason": "the route needs no permission"}
        resource = route.resource.fill(match.params)
        grant = grants.find(route.permission, resource)
        reason = f"{route.permission} on {resource}" + (
            f": record {grant.record_id}, role {grant.role_id} ({grant.action} on {grant.resource})"
            if grant
            else ""
        )
        return {**found, "decision": "allow", "status": 200, "reason": reason}

    async def signing_keys(request: Request, session: Session, data: dict[str, str]) -> Response:
        require(session.caller, "signing-keys", "read")
        no_tenant(session.caller, "see the gateway's signing keys")
        keys = await asyncio.to_thread(store.signing_keys)
        order = {"current": 0, "next": 1, "retired": 2}
        return web.page(
            request,
            "signing_keys.html",
            nav="signing-keys",
            keys=sorted(keys, key=lambda k: (order.get(k.state, 3), k.created_at)),
            may_rotate=may(session.caller, "signing-keys", "write"),
            jwks_max_age=int(runtime.config.tokens.jwks_max_age),
        )

    async def rotate(request: Request, session: Session, data: dict[str, str]) -> Response:
        require(session.caller, "signing-keys", "write")
        no_tenant(session.caller, "rotate the gateway's signing key")
        if data.get("confirm") != "rotate":
            raise InvalidRequest("confirm: tick the box to confirm the rotation")
        rotation = runtime.identity.rotation
        await asyncio.to_thread(
            rotate_now,
            store,
            rotation.sealer,
            runtime.config,
            session.caller.actor,
            data.get("now") == "yes",
            'tick "rotate now anyway"',
        )
        await rotation.reload()
        return console.redirect("signing-keys")

    return [
        Route("/", console.signed_in(overview), methods=["GET"]),
        Route("/audit", console.signed_in(audit_log), methods=["GET"]),
        Route("/policies", console.signed_in(policies), methods=["GET"]),
        Route("/signing-keys", console.signed_in(signing_keys), methods=["GET"]),
        Route("/signing-keys/rotate", console.signed_in(rotate), methods=["POST"]),
    ]
