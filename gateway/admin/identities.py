"""Admin API: trusted identities, `/v1/identities` (contract §5). The checks and the work are in
`admin.identity_actions`, shared with the web console; this module is the JSON around them."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from gateway.admin.auth import Caller
from gateway.admin.collection import object_routes
from gateway.admin.identity_actions import IdentityActions
from gateway.identity.trusted import render_identity
from gateway.models import TrustedIdentity
from gateway.runtime import Runtime


def routes(runtime: Runtime, actions: IdentityActions) -> list[Route]:
    async def put(caller: Caller, identity_id: str | None, body: dict[str, Any]) -> TrustedIdentity:
        if identity_id is None:
            return await actions.create(caller, body)
        return await actions.replace(caller, identity_id, body)

    return object_routes(runtime, "identities", render_identity, actions.list, actions.get, put, actions.delete)
