"""The login flow that puts a user's refresh token into the vault (contract §8), so no service
has to write one: authorization code with PKCE S256 (RFC 7636).

    POST …/users/{userId}/authorize  → the provider's authorization URL, with a state that is
        random (256 bits), single use, bound to (connection, user) and valid 10 minutes; only its
        hash is stored, with the PKCE verifier sealed under the master key.
    the provider → GET {public_url}/oauth/connections/{connectionId}/callback?code&state
        the state is taken (deleted) first, so a replay finds nothing; then checked: this
        connection, not expired; the code is exchanged with the verifier; the tokens are stored
        for the state's user; the browser goes to `redirectAfter` (one of the connection's
        `allowedRedirects`) or sees a plain page.

A replayed, expired, foreign (another connection's) or unknown state stores nothing.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

from gateway.crypto import SealError, b64url
from gateway.errors import InvalidRequest, ProviderUnavailable
from gateway.identity.grants import GrantSet
from gateway.vault.provider import ProviderRejected, ProviderUnreachable
from gateway.vault.service import Vault
from gateway.vault_models import LOGIN_VERIFIER, LoginState, binding

STATE_LIFETIME = 600


def _state_hash(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class Login:
    def __init__(self, vault: Vault, public_url: str) -> None:
        self.vault = vault
        self.public_url = public_url

    def redirect_uri(self, connection_id: str) -> str:
        return f"{self.public_url}/oauth/connections/{quote(connection_id, safe='')}/callback"

    async def authorize(
        self, grants: GrantSet, actor: str, connection_id: str, user_id: str, body: dict[str, Any]
    ) -> str:
        connection = await self.vault.allowed(grants, actor, "credentials:write", connection_id, user_id)
        redirect_after = body.get("redirectAfter")
        if redirect_after is not None and (
            not isinstance(redirect_after, str) or redirect_after not in connection.allowed_redirects
        ):
            raise InvalidRequest("redirectAfter: not one of the connection's allowedRedirects")
        state = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters of RFC 7636 §4.1's alphabet
        state_hash = _state_hash(state)
        login = LoginState(
            state_hash=state_hash,
            connection_id=connection_id,
            user_id=user_id,
            sealed_verifier=self.vault.sealer.seal(
                verifier.encode(), binding(LOGIN_VERIFIER, connection_id, user_id, state_hash)
            ),
            redirect_after=redirect_after,
            expires_at=int(time.time()) + STATE_LIFETIME,
            actor=actor,
        )
        await self.vault.run(self.vault.store.add_login_state, login, int(time.time()))
        params = {
            "response_type": "code",
            "client_id": connection.client_id,
            "redirect_uri": self.redirect_uri(connection_id),
            "state": state,
            "code_challenge": b64url(hashlib.sha256(verifier.encode()).digest()),
            "code_challenge_method": "S256",
            **({"scope": " ".join(connection.scopes)} if connection.scopes else {}),
            **dict(connection.authorization_params),
        }
        separator = "&" if "?" in connection.authorization_url else "?"
        return connection.authorization_url + separator + urlencode(params)

    async def callback(self, connection_id: str, query: dict[str, str]) -> str | None:
        """Finish a login: returns where to send the browser (None: show a plain page). Raises
        InvalidRequest (nothing stored) or ProviderUnavailable."""
        state = query.get("state")
        if not state or len(state) > 512:
            raise InvalidRequest("state: missing")
        login: LoginState | None = await self.vault.run(self.vault.store.take_login_state, _state_hash(state))
        if login is None:
            raise InvalidRequest("state: unknown or used already; start the login again")
        key = (login.connection_id, login.user_id)
        if login.connection_id != connection_id:
            raise InvalidRequest("state: issued for another connection")
        if login.expires_at < time.time():
            self.vault.audit_later(login.actor, "credentials.login", *key, "expired")
            raise InvalidRequest("state: expired; start the login again")
        if "error" in query:
            self.vault.audit_later(login.actor, "credentials.login", *key, "refused")
            error = query["error"] if query["error"].replace("_", "").isalnum() else "an error"
            raise InvalidRequest(f"the provider answered {error[:64]}; nothing was stored")
        code = query.get("code")
        if not code or len(code) > 4096:
            raise InvalidRequest("code: missing")
        # Read past the cache: allowedRedirects is checked below and may have changed a moment ago.
        connection = await self.vault.connection(connection_id, fresh=True)
        try:
            verifier = self.vault.sealer.open(
                login.sealed_verifier,
                binding(LOGIN_VERIFIER, login.connection_id, login.user_id, login.state_hash),
            ).decode()
        except SealError:
            # Sealed under a master key no longer configured (or tampered with): this login cannot
            # finish, a new one can.
            self.vault.audit_later(login.actor, "credentials.login", *key, "unreadable")
            raise InvalidRequest("state: cannot be read by this gateway; start the login again") from None
        try:
            answer = await self.vault.run(
                self.vault.provider.exchange_code,
                connection,
                self.vault.secret_of(connection),
                code,
                self.redirect_uri(connection_id),
                verifier,
            )
        except ProviderRejected as exc:
            self.vault.audit_later(login.actor, "credentials.login", *key, f"rejected:{exc.error}")
            raise InvalidRequest(f"the provider refused the code ({exc.error}); nothing was stored") from None
        except ProviderUnreachable:
            self.vault.audit_later(login.actor, "credentials.login", *key, "provider_unavailable")
            raise ProviderUnavailable() from None
        if answer.refresh_token is None:
            self.vault.audit_later(login.actor, "credentials.login", *key, "no_refresh_token")
            raise InvalidRequest(
                "the provider sent no refresh token (the connection may need authorizationParams such as "
                "access_type=offline, or the offline_access scope); nothing was stored"
            )
        await self.vault.store_tokens(key, answer.refresh_token, answer, login.actor, "credentials.login")
        # Checked again: the connection may have dropped the address since the login started.
        return login.redirect_after if login.redirect_after in connection.allowed_redirects else None
