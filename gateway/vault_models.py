"""The vault's values (contract §8) and the validation of a connection, shared by the admin API
(camelCase JSON) and the config file (`vault.connections`, snake_case).

A connection is the gateway's registration at one OAuth provider. Its client secret is either
sealed under the master key (`sealed_secret`) or read from an environment variable at use
(`client_secret_env`); it is never rendered.

Foundation layer (beside gateway.models): imports errors, paths and models only.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from gateway.errors import InvalidRequest
from gateway.models import now_iso
from gateway.paths import check_segment

CONNECTION_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")  # what Authress's SDKs accept (always fullmatch)
# Credentials' user ids are a path segment: no slash, no control characters, bounded.
USER_ID = re.compile(r"[^/\x00-\x1f\x7f]{1,256}")
DEFAULT_RESOURCE = "/user-credentials/refresh-tokens/users/{userId}"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
# Over the admin API a connection may only name environment variables with this prefix: a
# writer of connections must not be able to send GATEWAY_MASTER_KEY to a token URL of its own.
API_SECRET_ENV_PREFIX = "GATEWAY_CONNECTION_"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_MAX_TEXT = 2048

REFRESH_TOKEN = "vault-refresh-token"
ACCESS_TOKEN = "vault-access-token"
LOGIN_VERIFIER = "vault-login"
CONNECTION_SECRET = "connection-secret"


def binding(purpose: str, *parts: str) -> str:
    """The associated data of a sealed vault value: its purpose and the row it belongs to
    (JSON, so no user id can be crafted to look like another (connection, user) pair)."""
    return f"{purpose}:{json.dumps(parts)}"


@dataclass(frozen=True, slots=True)
class Connection:
    connection_id: str
    name: str
    authorization_url: str
    token_url: str
    client_id: str
    created_at: str
    updated_at: str
    revocation_url: str | None = None
    scopes: tuple[str, ...] = ()
    resource_template: str = DEFAULT_RESOURCE
    allowed_redirects: tuple[str, ...] = ()
    token_auth_method: str = "client_secret_basic"
    authorization_params: tuple[tuple[str, str], ...] = ()
    client_secret_env: str | None = None
    sealed_secret: str | None = None
    source: str = "api"  # "api" (in the store) or "config" (from the config file, read-only)

    def resource(self, user_id: str) -> str:
        return self.resource_template.replace("{userId}", user_id).replace(
            "{connectionId}", self.connection_id
        )


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """One user's credential at one connection, as stored (everything secret sealed)."""

    connection_id: str
    user_id: str
    sealed_refresh: str
    sealed_access: str | None
    token_type: str
    access_expires_at: int | None  # epoch seconds
    state: str  # "active" or "reauthorization_required"
    version: int
    created_at: str
    updated_at: str


@dataclass(frozen=True, slots=True)
class LoginState:
    state_hash: str
    connection_id: str
    user_id: str
    sealed_verifier: str
    redirect_after: str | None
    expires_at: int
    actor: str


# --- validation ------------------------------------------------------------------------------


def _url(value: object, field: str, required: bool = True) -> str | None:
    """http(s) URLs only; plain http only to loopback (a provider on the same machine or in tests),
    so client secrets and refresh tokens never cross a network in the clear."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"{field}: expected an https:// URL")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise InvalidRequest(f"{field}: expected an https:// URL without a fragment")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise InvalidRequest(f"{field}: must use https (plain http only to a loopback address)")
    return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _text(body: dict[str, Any], field: str, required: bool = False, default: str | None = None) -> str | None:
    value = body.get(field, default)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise InvalidRequest(f"{field}: expected a non-empty string")
    return value


def _list(body: dict[str, Any], field: str) -> tuple[str, ...]:
    value = body.get(field) or []
    if not isinstance(value, list) or not all(
        isinstance(v, str) and v and len(v) <= _MAX_TEXT for v in value
    ):
        raise InvalidRequest(f"{field}: expected a list of strings")
    return tuple(dict.fromkeys(value))


def _template(value: object) -> str:
    if value is None:
        return DEFAULT_RESOURCE
    if not isinstance(value, str) or not value.startswith("/") or "{userId}" not in value:
        raise InvalidRequest("resourceTemplate: expected a path containing {userId}")
    rest = value.replace("{userId}", "").replace("{connectionId}", "")
    if "{" in rest or "}" in rest:
        raise InvalidRequest("resourceTemplate: only {userId} and {connectionId} may be used")
    return value


def _params(value: object) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidRequest("authorizationParams: expected a mapping of strings to strings")
    reserved = {
        "response_type",
        "client_id",
        "redirect_uri",
        "state",
        "code_challenge",
        "code_challenge_method",
    }
    for name in value:
        if name in reserved:
            raise InvalidRequest(f"authorizationParams.{name}: set by the gateway")
    return tuple(sorted(value.items()))


def connection_from(
    body: dict[str, Any],
    connection_id: str | None,
    *,
    source: str = "api",
    existing: Connection | None = None,
    any_env: bool = False,
) -> tuple[Connection, str | None]:
    """A connection from an API body (camelCase; `authenticationUrl`, Authress's name, is read as
    `authorizationUrl`) and the plaintext client secret it carries, if any (to be sealed).

    Over the API a PUT that moves `tokenUrl` or `revocationUrl` must carry the secret again:
    otherwise whoever may edit a connection could send its stored secret to a URL of their own.
    """
    cid = connection_id if connection_id is not None else body.get("connectionId")
    if not isinstance(cid, str) or not CONNECTION_ID.fullmatch(cid) or cid in (".", ".."):
        raise InvalidRequest("connectionId: use 1 to 64 letters, digits and . _ : - (not . or ..)")
    auth_url = body.get("authorizationUrl") or body.get("authenticationUrl")
    secret = body.get("clientSecret")
    if secret is not None and (not isinstance(secret, str) or not secret or len(secret) > _MAX_TEXT):
        raise InvalidRequest("clientSecret: expected a non-empty string")
    env = body.get("clientSecretEnv")
    if env is not None:
        if not isinstance(env, str) or not _ENV_NAME.fullmatch(env) or env.startswith("GATEWAY_MASTER_KEY"):
            raise InvalidRequest("clientSecretEnv: expected the name of an environment variable")
        if source == "api" and not any_env and not env.startswith(API_SECRET_ENV_PREFIX):
            raise InvalidRequest(
                f"clientSecretEnv: over the API, only names starting {API_SECRET_ENV_PREFIX}"
            )
    if secret is not None and env is not None:
        raise InvalidRequest("clientSecret: give clientSecret or clientSecretEnv, not both")
    method = body.get("tokenEndpointAuthMethod", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidRequest(f"tokenEndpointAuthMethod: expected one of {', '.join(AUTH_METHODS)}")
    token_url = _url(body.get("tokenUrl"), "tokenUrl")
    revocation_url = _url(body.get("revocationUrl"), "revocationUrl", required=False)
    sealed = existing.sealed_secret if existing is not None and secret is None and env is None else None
    if (
        sealed is not None
        and existing is not None
        and (existing.token_url, existing.revocation_url) != (token_url, revocation_url)
    ):
        raise InvalidRequest("clientSecret: required again when tokenUrl or revocationUrl changes")
    if method != "none" and secret is None and env is None and sealed is None:
        raise InvalidRequest("clientSecret: required (or clientSecretEnv, or tokenEndpointAuthMethod: none)")
    redirects = _list(body, "allowedRedirects")
    for i, redirect in enumerate(redirects):
        parts = urlsplit(redirect)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise InvalidRequest(f"allowedRedirects[{i}]: expected an absolute http(s) URL")
    now = now_iso()
    scopes = _list(body, "scopes")
    if any(" " in s for s in scopes):
        raise InvalidRequest("scopes: a scope has no spaces")
    connection = Connection(
        connection_id=cid,
        name=_text(body, "name", default=cid) or cid,
        authorization_url=_url(auth_url, "authorizationUrl") or "",
        token_url=token_url or "",
        client_id=_text(body, "clientId", required=True) or "",
        created_at=existing.created_at if existing else now,
        updated_at=now,
        revocation_url=revocation_url,
        scopes=scopes,
        resource_template=_template(body.get("resourceTemplate")),
        allowed_redirects=redirects,
        token_auth_method=str(method),
        authorization_params=_params(body.get("authorizationParams")),
        client_secret_env=env,
        sealed_secret=sealed,
        source=source,
    )
    return connection, secret


def render_connection(c: Connection) -> dict[str, Any]:
    """Authress's Connection shape plus the gateway's fields. Never the secret: only whether
    there is one and where it comes from."""
    return {
        "connectionId": c.connection_id,
        "type": "OAUTH2",
        "name": c.name,
        "authorizationUrl": c.authorization_url,
        "authenticationUrl": c.authorization_url,
        "tokenUrl": c.token_url,
        "revocationUrl": c.revocation_url,
        "clientId": c.client_id,
        "clientSecretEnv": c.client_secret_env,
        "hasClientSecret": c.sealed_secret is not None or c.client_secret_env is not None,
        "tokenEndpointAuthMethod": c.token_auth_method,
        "scopes": list(c.scopes),
        "resourceTemplate": c.resource_template,
        "allowedRedirects": list(c.allowed_redirects),
        "authorizationParams": dict(c.authorization_params),
        "source": c.source,
        "createdTime": c.created_at,
        "lastUpdated": c.updated_at,
    }


def user_id_of(value: str) -> str:
    """A user id becomes one segment of the credential's resource: one reading only (the
    proxy's canonical-path rules, as for every resource the grants compare)."""
    if not USER_ID.fullmatch(value):
        raise InvalidRequest("userId: 1 to 256 characters, no slash or control characters")
    check_segment(value, "userId")
    return value
