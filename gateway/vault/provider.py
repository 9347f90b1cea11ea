"""Calls to a connection's OAuth provider (RFC 6749 §4.1.3 code exchange, §6 refresh; RFC 7009
revocation), with httpx: bounded timeouts, no redirects, a bounded answer.

These run in worker threads (the refresh holds the credential's store lock while it waits), so the
client is httpx's synchronous one. Provider errors become the two exceptions below, whose messages
carry the provider's `error` code at most, never a token or the provider's free text.

    ProviderError
    ├── ProviderRejected     the provider answered 400/401 with an OAuth error (invalid_grant, ...)
    └── ProviderUnreachable  no answer, a timeout, a 5xx, or an answer that is not a token response
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import httpx

from gateway.vault_models import Connection

MAX_ANSWER = 64 * 1024
_ERROR_CODE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,64}")  # RFC 6749 §5.2 error charset


class ProviderError(Exception):
    pass


class ProviderRejected(ProviderError):
    def __init__(self, error: str) -> None:
        super().__init__(f"the provider answered {error}")
        self.error = error


class ProviderUnreachable(ProviderError):
    pass


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    access_token: str
    token_type: str
    expires_in: int | None
    refresh_token: str | None


class ProviderClient:
    def __init__(self, timeout: float) -> None:
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            headers={"accept": "application/json", "user-agent": "gateway-vault"},
        )

    def close(self) -> None:
        self._http.close()

    def _post(
        self, connection: Connection, url: str, secret: str | None, form: dict[str, str]
    ) -> tuple[int, Any]:
        """POST a form with the connection's client authentication: (status, parsed JSON or None)."""
        auth: tuple[str, str] | None = None
        form = dict(form)
        if connection.token_auth_method == "client_secret_basic" and secret is not None:
            auth = (connection.client_id, secret)
        else:
            form["client_id"] = connection.client_id
            if connection.token_auth_method == "client_secret_post" and secret is not None:
                form["client_secret"] = secret
        try:
            with self._http.stream("POST", url, data=form, auth=auth) as response:
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_ANSWER:
                        raise ProviderUnreachable("the provider's answer is over 64 KiB")
                return response.status_code, _json(body)
        except httpx.HTTPError as exc:
            # The exception text may hold the URL, never a secret; keep only its kind.
            raise ProviderUnreachable(f"cannot reach the provider ({type(exc).__name__})") from None

    def token(self, connection: Connection, secret: str | None, form: dict[str, str]) -> TokenAnswer:
        status, data = self._post(connection, connection.token_url, secret, form)
        if status in (400, 401) and isinstance(data, dict) and isinstance(data.get("error"), str):
            error = data["error"]
            raise ProviderRejected(error if _ERROR_CODE.fullmatch(error) else "an unreadable error")
        if status != 200 or not isinstance(data, dict):
            raise ProviderUnreachable(f"the provider answered HTTP {status}")
        access = data.get("access_token")
        refresh = data.get("refresh_token")
        expires = data.get("expires_in")
        token_type = data.get("token_type", "Bearer")
        if isinstance(expires, str) and expires.isdigit():  # some providers send a string
            expires = int(expires)
        if (
            not isinstance(access, str)
            or not access
            or (refresh is not None and (not isinstance(refresh, str) or not refresh))
            or (
                expires is not None
                and (isinstance(expires, bool) or not isinstance(expires, int) or expires < 0)
            )
            or not isinstance(token_type, str)
        ):
            raise ProviderUnreachable("the provider's token response is malformed")
        # RFC 6750 names the type "Bearer"; providers write it in any case.
        return TokenAnswer(
            access, "Bearer" if token_type.lower() == "bearer" else token_type, expires, refresh
        )

    def refresh(self, connection: Connection, secret: str | None, refresh_token: str) -> TokenAnswer:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if connection.scopes:
            form["scope"] = " ".join(connection.scopes)
        return self.token(connection, secret, form)

    def exchange_code(
        self, connection: Connection, secret: str | None, code: str, redirect_uri: str, verifier: str
    ) -> TokenAnswer:
        return self.token(
            connection,
            secret,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            },
        )

    def revoke(self, connection: Connection, secret: str | None, refresh_token: str) -> bool:
        """RFC 7009: True when the provider acknowledged (200)."""
        if connection.revocation_url is None:
            return False
        form = {"token": refresh_token, "token_type_hint": "refresh_token"}
        try:
            return self._post(connection, connection.revocation_url, secret, form)[0] == 200
        except ProviderUnreachable:
            return False


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
