"""Console sign-in and sessions (contract §12).

Sign-in takes an access key or a generated client secret (`gwcs_…`), proves it with the same
authenticators as the proxy and the token endpoint, and requires the client to hold some admin
permission. The browser then gets a random session id in an HttpOnly, SameSite=Strict cookie
(Secure under https); the store keeps only its SHA-256 with the client, the credential it proved
and an absolute expiry (8 h at most), so every worker and replica sees the same sessions.

Each request re-checks, through the directory the proxy uses (kept fresh by the change feed), that
the client still exists and is enabled and that the credential is still active: revoking the key
or the client ends the session within the proxy's revocation bound. Its grants are read afresh too,
so a permission taken away is gone from the console at once.

The CSRF token of a session is derived from its id (a hash the store does not hold), and the
sign-in form has its own double-submit token, so no form can be posted from another site.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.auth import Caller
from gateway.errors import AccessDenied, InvalidClient, InvalidToken, TooManyRequests
from gateway.identity import secrets as client_secrets
from gateway.models import Identity
from gateway.oauth.throttle import Throttle
from gateway.pipeline.forward.headers import client_address
from gateway.runtime import Runtime

COOKIE = "gateway_console"
SIGN_IN_COOKIE = "gateway_console_signin"
# The collections of contract §7 and the console's own: holding a read permission on any of them
# is what makes a client an administrator who may sign in.
ADMIN_COLLECTIONS = (
    "clients",
    "roles",
    "records",
    "identities",
    "audit",
    "authorization",
    "connections",
    "policies",
    "signing-keys",
)


def _digest(text: str, purpose: str) -> str:
    return hashlib.sha256(f"{purpose}:{text}".encode()).hexdigest()


def csrf_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Session:
    caller: Caller
    id_hash: str
    csrf: str
    expires_at: int


class Sessions:
    def __init__(self, runtime: Runtime, cookie_path: str) -> None:
        self.runtime = runtime
        self.identity = runtime.identity
        self.store = runtime.identity.store
        self.directory = runtime.identity.directory
        self.cookie_path = cookie_path
        self.lifetime = int(runtime.config.console.session_lifetime)
        self.secure = runtime.config.admin_public_url.startswith("https:")
        config = runtime.config
        self.throttle = Throttle(config.throttle.failures_per_client, config.throttle.failures_per_address)

    # --- cookies ------------------------------------------------------------------------------

    def _secure(self, request: Request) -> bool:
        return self.secure or request.url.scheme == "https"

    def set_cookie(self, response: Response, request: Request, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=self.cookie_path,
            secure=self._secure(request),
            httponly=True,
            samesite="strict",
        )

    def clear_cookie(self, response: Response, request: Request, name: str) -> None:
        response.delete_cookie(
            name, path=self.cookie_path, secure=self._secure(request), httponly=True, samesite="strict"
        )

    def sign_in_token(self, request: Request) -> tuple[str, str | None]:
        """(the sign-in form's CSRF token, a new cookie value to set, if the browser has none)."""
        current = request.cookies.get(SIGN_IN_COOKIE)
        if current and len(current) <= 64:
            return _digest(current, "sign-in"), None
        fresh = secrets.token_urlsafe(32)
        return _digest(fresh, "sign-in"), fresh

    def sign_in_csrf_ok(self, request: Request, given: str | None) -> bool:
        current = request.cookies.get(SIGN_IN_COOKIE)
        return bool(current) and csrf_matches(_digest(current or "", "sign-in"), given)

    # --- sign-in --------------------------------------------------------------------------------

    def address_of(self, request: Request) -> str:
        peer = request.scope.get("client")
        return client_address(
            request.scope["headers"], str(peer[0]) if peer else "-", self.runtime.config.trusted_proxies
        )

    async def sign_in(self, request: Request, credential: str) -> str:
        """A new session for the client the credential proves; returns the session id (for the
        cookie only). Raises InvalidToken (not a valid credential), AccessDenied (no admin
        permission) or TooManyRequests (too many failures from this address)."""
        address = self.address_of(request)
        wait = self.throttle.retry_after(address, None)
        if wait is not None:
            raise TooManyRequests(wait)
        try:
            client_id, credential_id = await self._prove(credential.strip())
        except InvalidToken:
            self.throttle.failed(address, None)
            raise
        grants = await self.directory.grant_set(client_id)
        if not any(
            grants.find(f"gateway:{c}:read", f"/gateway/{c}")
            or grants.find(f"gateway:{c}:write", f"/gateway/{c}")
            for c in ADMIN_COLLECTIONS
        ):
            raise AccessDenied(
                "this client holds no admin permission (gateway:<collection>:read on /gateway)"
            )
        session_id = secrets.token_urlsafe(32)
        now = int(time.time())
        await asyncio.to_thread(
            self.store.create_console_session,
            _digest(session_id, "session"),
            client_id,
            credential_id,
            now + self.lifetime,
            now,
        )
        return session_id

    async def _prove(self, credential: str) -> tuple[str, str]:
        """(client id, credential id) of a valid access key or client secret."""
        if not credential:
            raise InvalidToken("enter an access key or a client secret", presented=False, reason="missing")
        if credential.startswith(client_secrets.PREFIX):
            # The secret names its id, and the stored secret its client: the person signing in
            # pastes one value, as with an access key.
            secret_id = client_secrets.secret_id_of(credential)
            stored = await asyncio.to_thread(self.store.get_client_secret, secret_id) if secret_id else None
            client_id = stored.client_id if stored is not None else "unknown"
            try:
                proved = await self.identity.client_auth.authenticate(
                    {"client_id": client_id, "client_secret": credential}, None
                )
            except InvalidClient:
                raise InvalidToken("the client secret is not valid", reason="invalid") from None
            assert proved is not None
            return proved.client.client_id, proved.credential_id
        identity = await self.runtime.authn.authenticate(credential, frozenset({"access_key"}))
        assert identity.client_id is not None and identity.credential_id is not None
        return identity.client_id, identity.credential_id

    # --- every request --------------------------------------------------------------------------

    async def current(self, request: Request) -> Session | None:
        """The request's live session, or None (no cookie, unknown, expired, or its client or
        credential revoked: then the row is deleted too)."""
        session_id = request.cookies.get(COOKIE)
        if not session_id or len(session_id) > 64:
            return None
        id_hash = _digest(session_id, "session")
        row = await asyncio.to_thread(self.store.get_console_session, id_hash, int(time.time()))
        if row is None:
            return None
        client = await self.directory.client(row.client_id)
        if (
            client is None
            or client.disabled
            or not await self.directory.credential_active(row.client_id, row.credential_id)
        ):
            await asyncio.to_thread(self.store.delete_console_session, id_hash)
            return None
        identity = Identity(
            method="console",
            client_id=client.client_id,
            tenant=client.tenant,
            scopes=frozenset(client.scopes),
            audiences=frozenset(client.audiences),
            credential_id=row.credential_id,
        )
        caller = Caller(identity, await self.directory.grant_set(client.client_id))
        return Session(caller, id_hash, _digest(session_id, "csrf"), row.expires_at)

    async def sign_out(self, session: Session) -> None:
        await asyncio.to_thread(self.store.delete_console_session, session.id_hash)
