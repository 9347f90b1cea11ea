"""What an admin caller may do with trusted identities (contract §5), and doing it: create,
list, get, replace and delete, with the permission checks (`gateway:identities:read|write` on
`/gateway/identities[/<id>]`) and the tenant rules, as admin/actions.py does for the other
collections. The admin API (admin/identities.py) and the web console call the same methods.
Naming a client in an entry also takes `gateway:clients:write` on that client: an entry hands out
the client's powers, as one of its access keys does.

Tenant rules: a tenant admin sees and manages only the entries that map to its tenant's clients
(the rest is 404), and names only its tenant's clients. Entries from the config file are listed
and readable but refuse changes (409: edit the file). Authress's `linkIdentity` shape
(`{jwt, preferredAudience}` with a `clientId`) is accepted on create: the token must verify now,
and the entry takes its issuer, the audience and a `sub` condition equal to its `sub`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from gateway.admin.auth import Caller, require
from gateway.errors import ConflictError, InvalidRequest, InvalidToken, NotFound
from gateway.identity.directory import Directory
from gateway.identity.external import ExternalTokenVerifier, audiences_of
from gateway.identity.trusted import check_not_own_issuer, identity_from, url_field
from gateway.models import TrustedIdentity
from gateway.presented import Presented
from gateway.store import Conflict, Missing, Store


class IdentityActions:
    def __init__(
        self,
        store: Store,
        directory: Directory,
        verifier: ExternalTokenVerifier,
        configured: tuple[TrustedIdentity, ...] = (),
        own_issuers: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.directory = directory
        self.verifier = verifier
        self.configured = {e.identity_id: e for e in configured}
        self.own_issuers = own_issuers

    # --- reads ------------------------------------------------------------------------------

    async def list(
        self, caller: Caller, cursor: str = "", limit: int = 20
    ) -> tuple[list[TrustedIdentity], str | None]:
        """One page by id, after `cursor`; the next cursor when there is more."""
        require(caller, "identities", "read")
        stored = await asyncio.to_thread(self.store.list_trusted_identities, cursor, limit + 1, caller.tenant)
        configured = [e for e in self.configured.values() if e.identity_id > cursor]
        if caller.tenant is not None:
            configured = [e for e in configured if await self._client_in_tenant(e.client_id, caller.tenant)]
        merged = sorted(
            [*configured, *(e for e in stored if e.identity_id not in self.configured)],
            key=lambda e: e.identity_id,
        )
        page = merged[:limit]
        return page, page[-1].identity_id if len(merged) > limit else None

    async def get(self, caller: Caller, identity_id: str, action: str = "read") -> TrustedIdentity:
        """The entry, when the caller may `action` it and its tenant (if any) owns it; else 404."""
        require(caller, "identities", action, identity_id)
        entry = self.configured.get(identity_id) or await asyncio.to_thread(
            self.store.get_trusted_identity, identity_id
        )
        if entry is None or (
            caller.tenant is not None and not await self._client_in_tenant(entry.client_id, caller.tenant)
        ):
            raise NotFound(f"no identity {identity_id}")
        return entry

    # --- writes -----------------------------------------------------------------------------

    async def create(self, caller: Caller, body: Mapping[str, Any]) -> TrustedIdentity:
        require(caller, "identities", "write")
        if "jwt" in body:
            body = await self._from_link(body)
        entry = identity_from(body)
        if entry.identity_id in self.configured:
            raise ConflictError(f"identity {entry.identity_id} exists already (in the config file)")
        await self._check(caller, entry)
        try:
            return await asyncio.to_thread(self.store.put_trusted_identity, entry, caller.actor)
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def replace(self, caller: Caller, identity_id: str, body: Mapping[str, Any]) -> TrustedIdentity:
        """PUT: replace an existing entry (404 when there is none the caller may see)."""
        previous = await self.get(caller, identity_id, "write")
        self._writable(previous)
        entry = identity_from(body, identity_id, previous=previous)
        await self._check(caller, entry)
        try:
            return await asyncio.to_thread(
                self.store.put_trusted_identity, entry, caller.actor, previous.revision
            )
        except Conflict as exc:
            raise ConflictError(str(exc)) from None

    async def delete(self, caller: Caller, identity_id: str) -> None:
        entry = await self.get(caller, identity_id, "write")
        self._writable(entry)
        try:
            await asyncio.to_thread(self.store.delete_trusted_identity, identity_id, caller.actor)
        except Missing:
            raise NotFound(f"no identity {identity_id}") from None

    # --- rules ------------------------------------------------------------------------------

    @staticmethod
    def _writable(entry: TrustedIdentity) -> None:
        if entry.source == "config":
            raise ConflictError(
                f"identity {entry.identity_id} is defined in the config file; change it there"
            )

    async def _client_in_tenant(self, client_id: str, tenant: str) -> bool:
        client = await self.directory.client(client_id)
        return client is not None and client.tenant == tenant

    async def _check(self, caller: Caller, entry: TrustedIdentity) -> None:
        client = await asyncio.to_thread(self.store.get_client, entry.client_id)
        if client is None or (caller.tenant is not None and client.tenant != caller.tenant):
            raise InvalidRequest(f"clientId: no client {entry.client_id}")
        # Trusting an identity as a client hands out that client's powers, as creating one of its
        # access keys does: it takes the permission that creating a key takes.
        require(caller, "clients", "write", entry.client_id)
        check_not_own_issuer(entry.issuer, self.own_issuers)

    async def _from_link(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Authress's linkIdentity body → an entry body, from a token that verifies now."""
        token, preferred = body.get("jwt"), body.get("preferredAudience")
        if not isinstance(token, str) or not token:
            raise InvalidRequest("jwt: expected the token of the identity to trust")
        if preferred is not None and not isinstance(preferred, str):
            raise InvalidRequest("preferredAudience: expected a string")
        presented = Presented(token)
        if presented.jwt is None:
            raise InvalidRequest("jwt: not a JWT")
        issuer = presented.jwt.claims.get("iss")
        if not isinstance(issuer, str):
            raise InvalidRequest("jwt: the token has no issuer")
        # Checked before the issuer's keys are fetched: only https (or a loopback) issuer.
        check_not_own_issuer(url_field(issuer, "issuer"), self.own_issuers)
        jwks_uri = body.get("jwksUri")
        if jwks_uri is not None:
            url_field(jwks_uri if isinstance(jwks_uri, str) else "", "jwksUri")
        try:
            claims = await self.verifier.verify(presented, jwks_uri if isinstance(jwks_uri, str) else None)
        except InvalidToken as exc:
            raise InvalidRequest(f"jwt: {exc.description}") from None
        audiences = audiences_of(claims)
        if preferred == "*":  # the Authress SDKs' default: "whichever the token has"
            preferred = None
        if preferred is None and len(audiences) == 1:
            preferred = audiences[0]
        if preferred is None or preferred not in audiences:
            raise InvalidRequest("preferredAudience: must be one of the token's audiences")
        linked = {k: v for k, v in body.items() if k not in ("jwt", "preferredAudience")}
        return {**linked, "issuer": issuer, "audience": preferred, "conditions": {"sub": claims["sub"]}}
