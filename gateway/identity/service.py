"""Identity operations shared by the admin API and the CLI: creating things with fresh ids and
keys, validating input into models, and rendering models in Authress's camelCase shapes.

Validation errors raise InvalidRequest with `<field>: <why>` (contract §7)."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from typing import Any

from gateway.crypto import generate_access_key, new_client_id, random_id
from gateway.errors import InvalidRequest
from gateway.models import (
    AccessKey,
    Client,
    ClientPublicKey,
    ClientSecret,
    Permission,
    Record,
    Role,
    SigningKey,
    Statement,
    now_iso,
)
from gateway.paths import check_resource, check_segment
from gateway.quota import RateLimit, parse_rate_limit, whole
from gateway.store import Store

ADMIN_ROLE = "gateway-admin"
OWNER_ROLE = "owner"
ADMIN_RESOURCE = "/gateway"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_NAME_MAX = 200


def _text(body: dict[str, Any], field: str, required: bool = False, default: str | None = None) -> str | None:
    value = body.get(field, default)
    if value is None:
        if required:
            raise InvalidRequest(f"{field}: required")
        return None
    if not isinstance(value, str) or (required and not value.strip()) or len(value) > _NAME_MAX:
        raise InvalidRequest(f"{field}: expected a string of at most {_NAME_MAX} characters")
    return value


def _strings(body: dict[str, Any], field: str) -> tuple[str, ...]:
    value = body.get(field, [])
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v and " " not in v for v in value):
        raise InvalidRequest(f"{field}: expected a list of strings without spaces")
    return tuple(dict.fromkeys(value))


def _lifetime(body: dict[str, Any]) -> int | None:
    value = body.get("tokenLifetime")
    if value is None:
        return None
    value = whole(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 60 <= value <= 86400:
        raise InvalidRequest("tokenLifetime: expected whole seconds from 60 to 86400")
    return value


def _rate_limit(body: dict[str, Any]) -> RateLimit | None:
    """`rateLimit`: {requests, window (seconds), burst?}, or null for none (issue 14)."""
    value = body.get("rateLimit")
    if value is None:
        return None
    try:
        return parse_rate_limit(value)
    except ValueError as exc:
        raise InvalidRequest(f"rateLimit.{exc}" if ":" in str(exc) else f"rateLimit: {exc}") from None


def object_id(value: object, field: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidRequest(f"{field}: use letters, digits and . _ : - (at most 128)")
    return value


# --- clients ---------------------------------------------------------------------------------


def new_client(body: dict[str, Any], tenant: str | None) -> Client:
    """A client from a POST body. `tenant` is the caller's tenant when it has one (a tenant admin
    creates clients only in its own tenant), else the body's."""
    if tenant is None:
        tenant = _text(body, "tenant")
        if tenant is not None:
            object_id(tenant, "tenant")
    now = now_iso()
    return Client(
        client_id=new_client_id(),
        name=_text(body, "name", required=True) or "",
        description=_text(body, "description"),
        tenant=tenant,
        scopes=_strings(body, "scopes"),
        audiences=_strings(body, "audiences"),
        token_lifetime=_lifetime(body),
        disabled=_flag(body, "disabled"),
        rate_limit=_rate_limit(body),
        created_at=now,
        updated_at=now,
    )


def _bad(field: str) -> bool:
    raise InvalidRequest(f"{field}: expected true or false")


def _flag(body: dict[str, Any], field: str) -> bool:
    value = body.get(field)
    if value is None:
        return False
    return value if isinstance(value, bool) else _bad(field)


def updated_client(client: Client, body: dict[str, Any], require_name: bool) -> Client:
    """PUT (`require_name`) and PATCH change only the fields present: Authress's SDKs update a
    client by sending `{name, options, ...}`, which must not wipe its scopes or audiences. Ids,
    tenant, keys and timestamps are never taken from the body; explicit nulls clear a field."""

    def pick(field: str, read: Any, current: Any) -> Any:
        return read() if field in body else current

    if require_name:
        _text(body, "name", required=True)
    disabled = body.get("disabled", client.disabled)
    if disabled is None:
        disabled = False
    if not isinstance(disabled, bool):
        _bad("disabled")
    return replace(
        client,
        name=pick("name", lambda: _text(body, "name", required=True), client.name),
        description=pick("description", lambda: _text(body, "description"), client.description),
        scopes=pick("scopes", lambda: _strings(body, "scopes"), client.scopes),
        audiences=pick("audiences", lambda: _strings(body, "audiences"), client.audiences),
        token_lifetime=pick("tokenLifetime", lambda: _lifetime(body), client.token_lifetime),
        rate_limit=pick("rateLimit", lambda: _rate_limit(body), client.rate_limit),
        disabled=disabled,
        updated_at=now_iso(),
    )


def render_client(client: Client, keys: list[AccessKey] | None = None) -> dict[str, Any]:
    return {
        "clientId": client.client_id,
        "name": client.name,
        "description": client.description,
        "tenant": client.tenant,
        "scopes": list(client.scopes),
        "audiences": list(client.audiences),
        "tokenLifetime": client.token_lifetime,
        "rateLimit": None if client.rate_limit is None else client.rate_limit.as_json(),
        "disabled": client.disabled,
        "createdTime": client.created_at,
        "lastUpdated": client.updated_at,
        "options": {"grantUserPermissionsAccess": False, "grantTokenGeneration": False},
        # Only a single-client GET loads the keys; a list leaves the field out rather than
        # showing an empty list that is not true.
        **({"verificationKeys": [render_key(k) for k in keys]} if keys is not None else {}),
    }


# --- access keys -----------------------------------------------------------------------------


def new_access_key(client_id: str, account_id: str, expires_at: str | None = None) -> tuple[AccessKey, str]:
    """A fresh key pair: the model to store (public key only) and the access key, shown once."""
    made = generate_access_key(client_id, account_id)
    key = AccessKey(made.key_id, client_id, made.public_key, now_iso(), expires_at=expires_at)
    return key, made.access_key


def _lifecycle(credential: AccessKey | ClientSecret) -> dict[str, Any]:
    """Expiry and last use, as lists show them (an expired credential is listed, marked)."""
    return {
        "expiresAt": credential.expires_at,
        "expired": credential.expired(time.time()),
        "lastUsed": credential.last_used,
    }


def render_key(key: AccessKey, access_key: str | None = None) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "keyId": key.key_id,
        "clientId": key.client_id,
        "generationDate": key.created_at,
        **_lifecycle(key),
    }
    if access_key is not None:
        rendered["accessKey"] = access_key
    return rendered


# --- client secrets and registered public keys --------------------------------------------


def new_client_secret(client_id: str, expires_at: str | None = None) -> tuple[ClientSecret, str]:
    """A fresh secret: the model to store (a hash only) and the secret, shown once."""
    from gateway.identity.secrets import new_secret

    secret_id, secret, digest = new_secret()
    return ClientSecret(secret_id, client_id, digest, now_iso(), expires_at=expires_at), secret


def render_secret(secret: ClientSecret, shown_once: str | None = None) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "secretId": secret.secret_id,
        "clientId": secret.client_id,
        "createdTime": secret.created_at,
        **_lifecycle(secret),
    }
    if shown_once is not None:
        rendered["clientSecret"] = shown_once
    return rendered


def new_public_key(client_id: str, body: dict[str, Any]) -> ClientPublicKey:
    from gateway.identity.public_keys import parse_public_key

    alg, jwk = parse_public_key(body)
    return ClientPublicKey(random_id("pk_", 22), client_id, alg, jwk, now_iso())


def render_public_key(key: ClientPublicKey) -> dict[str, Any]:
    return {
        "keyId": key.key_id,
        "clientId": key.client_id,
        "alg": key.alg,
        "jwk": {**json.loads(key.jwk), "kid": key.key_id, "alg": key.alg},
        "createdTime": key.created_at,
    }


# --- roles and records -----------------------------------------------------------------------


def role_from(body: dict[str, Any], role_id: str | None) -> Role:
    rid = object_id(role_id if role_id is not None else body.get("roleId"), "roleId")
    permissions = body.get("permissions")
    if not isinstance(permissions, list):
        raise InvalidRequest("permissions: expected a list of {action, allow, grant, delegate}")
    parsed = []
    for i, p in enumerate(permissions):
        if not isinstance(p, dict) or not isinstance(p.get("action"), str) or not p["action"].strip():
            raise InvalidRequest(f"permissions[{i}].action: required")
        flags = {}
        for flag in ("allow", "grant", "delegate"):
            value = p.get(flag)
            if value is None:
                value = flag == "allow"
            if not isinstance(value, bool):
                raise InvalidRequest(f"permissions[{i}].{flag}: expected true or false")
            flags[flag] = value
        parsed.append(Permission(p["action"].strip(), **flags))
    now = now_iso()
    return Role(
        rid, _text(body, "name", default=rid) or rid, tuple(parsed), now, now, _text(body, "description")
    )


def render_role(role: Role) -> dict[str, Any]:
    return {
        "roleId": role.role_id,
        "name": role.name,
        "description": role.description,
        "permissions": [
            {"action": p.action, "allow": p.allow, "grant": p.grant, "delegate": p.delegate}
            for p in role.permissions
        ],
        "createdTime": role.created_at,
        "lastUpdated": role.updated_at,
    }


def record_from(body: dict[str, Any], record_id: str | None, actor: str) -> Record:
    rid = record_id if record_id is not None else body.get("recordId") or random_id("rec_", 16)
    object_id(rid, "recordId")
    users_raw = body.get("users") or []
    if not isinstance(users_raw, list):
        raise InvalidRequest("users: expected a list of {userId}")
    users = []
    for i, u in enumerate(users_raw):
        if not isinstance(u, dict) or not isinstance(u.get("userId"), str) or not u["userId"]:
            raise InvalidRequest(f"users[{i}].userId: required")
        check_segment(u["userId"], f"users[{i}].userId")
        users.append(u["userId"])
    statements_raw = body.get("statements")
    if not isinstance(statements_raw, list):
        raise InvalidRequest("statements: expected a list of {roles, resources}")
    statements = []
    for i, s in enumerate(statements_raw):
        if not isinstance(s, dict):
            raise InvalidRequest(f"statements[{i}]: expected {{roles, resources}}")
        roles = s.get("roles")
        if not isinstance(roles, list) or not all(isinstance(r, str) and r for r in roles):
            raise InvalidRequest(f"statements[{i}].roles: expected a list of role ids")
        resources = s.get("resources")
        if not isinstance(resources, list) or not all(
            isinstance(r, dict) and isinstance(r.get("resourceUri"), str) and r["resourceUri"]
            for r in resources
        ):
            raise InvalidRequest(f"statements[{i}].resources: expected a list of {{resourceUri}}")
        for j, r in enumerate(resources):
            check_resource(r["resourceUri"], f"statements[{i}].resources[{j}].resourceUri")
        statements.append(Statement(tuple(roles), tuple(r["resourceUri"] for r in resources)))
    now = now_iso()
    return Record(
        rid,
        _text(body, "name", default=rid) or rid,
        tuple(users),
        tuple(statements),
        now,
        now,
        _text(body, "description"),
        actor,
    )


def render_record(record: Record) -> dict[str, Any]:
    return {
        "recordId": record.record_id,
        "name": record.name,
        "description": record.description,
        "users": [{"userId": u} for u in record.users],
        "admins": [],
        "statements": [
            {"roles": list(s.roles), "resources": [{"resourceUri": r} for r in s.resources]}
            for s in record.statements
        ],
        "status": "ACTIVE",
        "createdTime": record.created_at,
        "lastUpdated": record.updated_at,
    }


# --- init ------------------------------------------------------------------------------------


def initial_objects(name: str, account_id: str) -> tuple[Client, AccessKey, str, tuple[Role, ...], Record]:
    """What `gateway init` creates: the first admin client and its key; the gateway-admin role
    (every gateway: permission, with grant and delegate) given on /gateway; and the owner role
    (action `*`, with grant) given on `/`, so the first admin can hand out permissions on the
    upstream APIs. `*` and `/` never confer gateway: permissions (see identity.grants)."""
    now = now_iso()
    client = Client(new_client_id(), name, now, now, description="created by gateway init")
    key, access_key = new_access_key(client.client_id, account_id)
    admin = Role(ADMIN_ROLE, "Gateway administrator", (Permission("gateway:*", True, True, True),), now, now)
    owner = Role(
        OWNER_ROLE, "Owner of every upstream permission", (Permission("*", True, True, True),), now, now
    )
    record = Record(
        "gateway-admin",
        "Gateway administrators",
        (client.client_id,),
        (Statement((ADMIN_ROLE,), (ADMIN_RESOURCE,)), Statement((OWNER_ROLE,), ("/",))),
        now,
        now,
        created_by="gateway init",
    )
    return client, key, access_key, (admin, owner), record


def initialize(
    store: Store, account_id: str, name: str, signing_keys: tuple[SigningKey, ...]
) -> tuple[Client, str] | None:
    """Initialise the store; None when it was initialised already (also by a racing replica)."""
    client, key, access_key, roles, record = initial_objects(name, account_id)
    if not store.initialize(account_id, client, key, roles, record, signing_keys):
        return None
    return client, access_key
