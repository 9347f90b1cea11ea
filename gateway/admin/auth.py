"""Who calls the admin API, and what they may do there (contract §7).

Callers authenticate like any caller (an access key, a client-signed JWT whose issuer is the
admin listener's public URL or the gateway's, a gateway token, or a trusted external token). Each endpoint then needs
`gateway:<collection>:read` or `:write` on `/gateway/<collection>[/<id>]`, from the same grants
that authorize upstream calls. A tenant admin (a client with a tenant) sees only its tenant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from gateway import jsonsafe
from gateway.errors import AccessDenied, InvalidRequest, RequestTooLarge
from gateway.identity.grants import GrantSet
from gateway.models import Identity
from gateway.pipeline.authn import bearer_credential
from gateway.runtime import Runtime

# `oidc`: a CI job manages what its mapped client may manage with no stored secret (contract §5).
ADMIN_KINDS = frozenset({"access_key", "client_jwt", "gateway_jwt", "oidc"})
MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Caller:
    identity: Identity
    grants: GrantSet

    @property
    def client_id(self) -> str:
        assert self.identity.client_id is not None
        return self.identity.client_id

    @property
    def tenant(self) -> str | None:
        return self.identity.tenant

    @property
    def actor(self) -> str:
        return self.client_id


async def caller_of(request: Request, runtime: Runtime) -> Caller:
    raw = request.scope["headers"]
    credential = bearer_credential(
        [v for k, v in raw if k == b"authorization"], request.scope["query_string"]
    )
    identity = await runtime.authn.authenticate(credential, ADMIN_KINDS)
    assert identity.client_id is not None
    return Caller(identity, await runtime.identity.directory.grant_set(identity.client_id))


def require(caller: Caller, collection: str, action: str, object_id: str | None = None) -> None:
    resource = f"/gateway/{collection}" + (f"/{object_id}" if object_id else "")
    permission = f"gateway:{collection}:{action}"
    if caller.grants.find(permission, resource) is None:
        raise AccessDenied(f"{permission} on {resource} is needed")


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; an empty body means {} (Node's SDK sends Content-Type:
    application/json on bodyless requests)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise RequestTooLarge(f"the body is over {MAX_BODY} bytes")
    if not body.strip():
        return {}
    try:
        data = jsonsafe.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: expected a JSON object")
    return data


def page_args(request: Request, maximum: int = 100) -> tuple[str, int]:
    cursor = request.query_params.get("cursor") or ""
    try:
        limit = int(request.query_params.get("limit") or 20)
    except ValueError:
        raise InvalidRequest("limit: expected a whole number") from None
    if not 1 <= limit <= maximum:
        raise InvalidRequest(f"limit: expected 1 to {maximum}")
    return cursor, limit


def page(plural: str, items: list[dict[str, Any]], next_cursor: str | None) -> dict[str, Any]:
    return {plural: items, "pagination": {"next": {"cursor": next_cursor} if next_cursor else None}}
