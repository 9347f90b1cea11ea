"""Authorization: the route's scopes and audience against the credential, then its permission
on the resource against the grants (contract §4, §6).

Fail closed: a route that names a permission is denied unless the grants engine says yes.
"""

from __future__ import annotations

from typing import Protocol

from gateway.errors import AccessDenied, InsufficientScope
from gateway.models import Identity
from gateway.policy.model import Route


class GrantsEngine(Protocol):
    async def allowed(self, identity: Identity, permission: str, resource: str) -> bool: ...


class Authorizer:
    def __init__(self, grants: GrantsEngine) -> None:
        self.grants = grants

    async def authorize(self, route: Route, identity: Identity, params: dict[str, str]) -> None:
        missing = [s for s in route.scopes if s not in identity.scopes]
        if missing:
            raise InsufficientScope(f"missing scope {missing[0]}")
        if route.audience is not None and route.audience not in identity.audiences:
            raise InsufficientScope(f"the credential is not for audience {route.audience}")
        if route.permission is not None and route.resource is not None:
            resource = route.resource.fill(params)
            if not await self.grants.allowed(identity, route.permission, resource):
                raise AccessDenied(f"no grant gives {route.permission} on this resource")
