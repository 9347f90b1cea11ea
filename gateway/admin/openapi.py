"""GET /openapi.json: the admin API described as OpenAPI 3.1 (issue 9, defect 7: the document
says what the API really takes and returns, checked by schemathesis against a live gateway in
tests/hardening/test_openapi.py).

Adding an endpoint: append an `Operation` to `_OPERATIONS` (a 7-tuple `(method, path, summary,
permission, request schema, status, response schema)` works too) and its schemas to `_SCHEMAS`,
built with the helpers below so that nullable fields, required fields, patterns and ranges are
stated the way the API enforces them. Path parameters take their schema from `_PARAMETERS` by
name (an `Operation` may override one). Every operation documents the error answers it can give:
400, 401, 403, 404, 503, and 409 for writes (a conflict: the sixth key, a duplicate id, the last
administrator).

About 800 lines on purpose: beyond the small builder at the end it is data, one table of
operations and one of schemas, read top to bottom like the API reference it becomes. Split by
collection it would scatter the shared formats (ids, times, pages, errors) across modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway import __version__

Schema = dict[str, Any]


# --- schema helpers ----------------------------------------------------------------------------


def string(
    *, pattern: str | None = None, min_length: int | None = None, max_length: int | None = None, **extra: Any
) -> Schema:
    out: Schema = {"type": "string", **extra}
    if pattern is not None:
        out["pattern"] = pattern
    if min_length is not None:
        out["minLength"] = min_length
    if max_length is not None:
        out["maxLength"] = max_length
    return out


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def nullable(schema: Schema) -> Schema:
    """The value, or JSON null (what the API returns for an unset optional field)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def listing(plural: str, item: Schema) -> Schema:
    """A page: `{"<plural>": [...], "pagination": {"next": {"cursor"} | null}}` (contract §7)."""
    return obj({plural: array(item), "pagination": ref("Pagination")}, required=(plural, "pagination"))


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    permission: str | None = None
    request: str | None = None  # schema name of the JSON body
    status: int = 200
    response: str | None = None  # schema name of the success body
    params: dict[str, Schema] = field(default_factory=dict)  # path parameters overriding _PARAMETERS
    query: dict[str, Schema] = field(default_factory=dict)


# --- formats the API enforces -------------------------------------------------------------------

_S = string()
_ID = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"  # role, record and tenant ids (identity.service)
_TIME = string(description="ISO 8601 UTC, milliseconds")
_NAME = string(pattern=r"\S", max_length=200)  # at least one non-space character
_TEXT = string(max_length=200)
_WORD = string(pattern="^[^ ]+$", min_length=1)  # scopes, audiences: no spaces
_MAX_SECONDS = 10 * 365 * 86400  # identity.expiry
# One segment of a resource with one reading: not empty, `.` or `..`; no / \\ ; % or control
# characters (gateway.paths.check_segment).
_SEG = r"[^/\\;%\x00-\x1f\x7f]"
_SEGMENT = (
    rf"(?:[^/\\;%\x00-\x1f\x7f.]{_SEG}{{0,255}}|\.[^/\\;%\x00-\x1f\x7f.]{_SEG}{{0,254}}|\.\.{_SEG}{{1,254}})"
)
_USER_ID = string(pattern=f"^{_SEGMENT}$")
_RESOURCE_URI = string(pattern=f"^(?:/|(?:/{_SEGMENT})+)$")

_PARAMETERS: dict[str, Schema] = {
    "clientId": string(pattern="^sc_[A-Za-z0-9]{22}$"),
    "keyId": string(pattern="^acc_[A-Za-z0-9]{22}$"),
    "secretId": string(pattern="^sec_[A-Za-z0-9]{16}$"),
    "roleId": string(pattern=_ID),
    "recordId": string(pattern=_ID),
    "userId": _USER_ID,
    "resourceUri": _RESOURCE_URI,
    "permission": string(min_length=1, pattern="^[^/]+$"),
}
_PUBLIC_KEY_ID = {"keyId": string(pattern="^pk_[A-Za-z0-9]{22}$")}
_PAGE = {"cursor": _S, "limit": integer(1, 100)}
_EXPIRY = "Expiry"

# --- operations ----------------------------------------------------------------------------------

_OPERATIONS: list[Operation | tuple[str, str, str, str | None, str | None, int, str | None]] = [
    Operation(
        "post",
        "/v1/clients",
        "Create a service client",
        "gateway:clients:write",
        "ClientInput",
        201,
        "Client",
    ),
    Operation(
        "get",
        "/v1/clients",
        "List service clients (name: prefix search; tenant: exact)",
        "gateway:clients:read",
        response="ClientList",
        query={**_PAGE, "name": _S, "tenant": _S},
    ),
    Operation(
        "get", "/v1/clients/{clientId}", "Get a service client", "gateway:clients:read", response="Client"
    ),
    Operation(
        "put",
        "/v1/clients/{clientId}",
        "Update a service client (name required; fields present)",
        "gateway:clients:write",
        "ClientPut",
        200,
        "Client",
    ),
    Operation(
        "patch",
        "/v1/clients/{clientId}",
        "Update a service client (fields present)",
        "gateway:clients:write",
        "ClientPatch",
        200,
        "Client",
    ),
    Operation(
        "delete",
        "/v1/clients/{clientId}",
        "Delete a service client and its keys",
        "gateway:clients:write",
        status=204,
    ),
    Operation(
        "post",
        "/v1/clients/{clientId}/access-keys",
        "Create an access key (returned once; at most 5 active)",
        "gateway:clients:write",
        _EXPIRY,
        201,
        "NewAccessKey",
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/access-keys",
        "List access keys (expired ones marked)",
        "gateway:clients:read",
        response="AccessKeyList",
    ),
    Operation(
        "delete",
        "/v1/clients/{clientId}/access-keys/{keyId}",
        "Revoke an access key",
        "gateway:clients:write",
        status=204,
    ),
    Operation(
        "post",
        "/v1/clients/{clientId}/secrets",
        "Create a client secret (returned once)",
        "gateway:clients:write",
        _EXPIRY,
        201,
        "NewSecret",
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/secrets",
        "List client secrets (ids only)",
        "gateway:clients:read",
        response="SecretList",
    ),
    Operation(
        "delete",
        "/v1/clients/{clientId}/secrets/{secretId}",
        "Revoke a client secret",
        "gateway:clients:write",
        status=204,
    ),
    Operation(
        "post",
        "/v1/clients/{clientId}/public-keys",
        "Register a public key ({jwk} or {pem}) for private_key_jwt",
        "gateway:clients:write",
        "PublicKeyInput",
        201,
        "PublicKey",
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/public-keys",
        "List registered public keys",
        "gateway:clients:read",
        response="PublicKeyList",
    ),
    Operation(
        "delete",
        "/v1/clients/{clientId}/public-keys/{keyId}",
        "Revoke a registered public key",
        "gateway:clients:write",
        status=204,
        params=_PUBLIC_KEY_ID,
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/usage",
        "Requests per hour and route, from counts written in batches",
        "gateway:clients:read",
        response="Usage",
        query={"from": string(format="date-time"), "to": string(format="date-time")},
    ),
    Operation("post", "/v1/roles", "Create a role", "gateway:roles:write", "RoleCreate", 201, "Role"),
    Operation("get", "/v1/roles", "List roles", "gateway:roles:read", response="RoleList", query=_PAGE),
    Operation("get", "/v1/roles/{roleId}", "Get a role", "gateway:roles:read", response="Role"),
    Operation(
        "put",
        "/v1/roles/{roleId}",
        "Create or replace a role",
        "gateway:roles:write",
        "RoleInput",
        200,
        "Role",
    ),
    Operation("delete", "/v1/roles/{roleId}", "Delete a role", "gateway:roles:write", status=204),
    Operation(
        "post",
        "/v1/records",
        "Create an access record",
        "gateway:records:write",
        "RecordInput",
        201,
        "Record",
    ),
    Operation(
        "get",
        "/v1/records",
        "List access records",
        "gateway:records:read",
        response="RecordList",
        query=_PAGE,
    ),
    Operation(
        "get", "/v1/records/{recordId}", "Get an access record", "gateway:records:read", response="Record"
    ),
    Operation(
        "put",
        "/v1/records/{recordId}",
        "Create or replace an access record",
        "gateway:records:write",
        "RecordInput",
        200,
        "Record",
    ),
    Operation(
        "delete", "/v1/records/{recordId}", "Delete an access record", "gateway:records:write", status=204
    ),
    Operation(
        "get",
        "/v1/users/{userId}/resources/{resourceUri}/permissions/{permission}",
        "Check a permission: 200 allowed, 404 not (another user's needs gateway:authorization:read); "
        "an ambiguous resource URI or user id is a 400",
        response="Check",
    ),
    Operation(
        "get",
        "/v1/audit",
        "Who changed what, when (newest first)",
        "gateway:audit:read",
        response="AuditList",
        query={**_PAGE, "cursor": string(pattern="^[0-9]{1,18}$", description="from the previous page")},
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/.well-known/openid-configuration",
        "A client's issuer document (public)",
        response="ClientIssuer",
    ),
    Operation(
        "get",
        "/v1/clients/{clientId}/.well-known/openid-configuration/jwks",
        "A client's access keys as JWKs (public)",
        response="Jwks",
    ),
    Operation("get", "/.well-known/jwks.json", "The gateway's public signing keys (public)", response="Jwks"),
    # The credentials vault (contract §8)
    (
        "post",
        "/v1/connections",
        "Create a connection",
        "gateway:connections:write",
        "ConnectionInput",
        201,
        "Connection",
    ),
    ("get", "/v1/connections", "List connections", "gateway:connections:read", None, 200, "ConnectionList"),
    (
        "get",
        "/v1/connections/{connectionId}",
        "Get a connection",
        "gateway:connections:read",
        None,
        200,
        "Connection",
    ),
    (
        "put",
        "/v1/connections/{connectionId}",
        "Create or replace a connection",
        "gateway:connections:write",
        "ConnectionInput",
        200,
        "Connection",
    ),
    (
        "delete",
        "/v1/connections/{connectionId}",
        "Delete a connection and every credential stored for it",
        "gateway:connections:write",
        None,
        204,
        None,
    ),
    (
        "get",
        "/v1/connections/{connectionId}/users/{userId}/credentials",
        "A fresh access token for the user (409 reauthorization_required, 502 provider_unavailable)",
        "credentials:read",
        None,
        200,
        "UserConnectionCredentials",
    ),
    (
        "put",
        "/v1/connections/{connectionId}/users/{userId}/credentials",
        "Store the user's refresh token",
        "credentials:write",
        "CredentialsInput",
        204,
        None,
    ),
    (
        "delete",
        "/v1/connections/{connectionId}/users/{userId}/credentials",
        "Forget the user's credential (revoked at the provider when it can)",
        "credentials:write",
        None,
        204,
        None,
    ),
    (
        "post",
        "/v1/connections/{connectionId}/users/{userId}/authorize",
        "Start the login flow: the provider's authorization URL (PKCE S256, state valid 10 minutes)",
        "credentials:write",
        "AuthorizeInput",
        200,
        "AuthorizationUrl",
    ),
]

# --- schemas -------------------------------------------------------------------------------------

_RATE_LIMIT = obj(
    {
        "requests": integer(1, 1_000_000_000),
        "window": integer(1, 86400 * 31),
        "burst": nullable(integer(1, 1_000_000_000)),
    },
    required=("requests", "window"),
    additionalProperties=False,
)
_CLIENT_FIELDS: dict[str, Schema] = {
    "name": _NAME,
    "description": nullable(_TEXT),
    "scopes": nullable(array(_WORD)),
    "audiences": nullable(array(_WORD)),
    "tokenLifetime": nullable(integer(60, 86400)),
    "rateLimit": nullable(_RATE_LIMIT),
    "disabled": nullable({"type": "boolean"}),
}
_LIFECYCLE: dict[str, Schema] = {
    "expiresAt": nullable(_TIME),
    "expired": {"type": "boolean"},
    "lastUsed": nullable(_TIME),
}
_ACCESS_KEY = {"keyId": _S, "clientId": _S, "generationDate": _TIME, **_LIFECYCLE}
_SECRET = {"secretId": _S, "clientId": _S, "createdTime": _TIME, **_LIFECYCLE}
_PUBLIC_KEY = {
    "keyId": _S,
    "clientId": _S,
    "alg": string(enum=["EdDSA", "ES256", "RS256"]),
    "jwk": {"type": "object"},
    "createdTime": _TIME,
}
_ROLE_FIELDS: dict[str, Schema] = {
    "name": nullable(_TEXT),
    "description": nullable(_TEXT),
    "permissions": array(
        obj(
            {
                "action": string(pattern=r"\S"),
                "allow": {"type": "boolean"},
                "grant": {"type": "boolean"},
                "delegate": {"type": "boolean"},
            },
            required=("action",),
        )
    ),
}
_RECORD_FIELDS: dict[str, Schema] = {
    "name": nullable(_TEXT),
    "description": nullable(_TEXT),
    "users": array(obj({"userId": _USER_ID}, required=("userId",))),
    "statements": array(
        obj(
            {
                "roles": array(string(pattern=_ID)),
                "resources": array(obj({"resourceUri": _RESOURCE_URI}, required=("resourceUri",))),
            },
            required=("roles", "resources"),
        )
    ),
}

_SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {"error": _S, "error_description": _S, "request_id": _S}, required=("error", "error_description")
    ),
    "Pagination": obj({"next": nullable(obj({"cursor": _S}, required=("cursor",)))}, required=("next",)),
    "ClientInput": obj({**_CLIENT_FIELDS, "tenant": nullable(string(pattern=_ID))}, required=("name",)),
    "ClientPut": obj(_CLIENT_FIELDS, required=("name",)),
    "ClientPatch": obj(_CLIENT_FIELDS),
    "Client": obj(
        {
            "clientId": _S,
            "name": _S,
            "description": nullable(_S),
            "tenant": nullable(_S),
            "scopes": array(_S),
            "audiences": array(_S),
            "tokenLifetime": nullable(integer()),
            "rateLimit": nullable(
                obj({"requests": integer(), "window": {"type": "number"}, "burst": nullable(integer())})
            ),
            "disabled": {"type": "boolean"},
            "createdTime": _TIME,
            "lastUpdated": _TIME,
            "options": {"type": "object"},
            "verificationKeys": array(ref("AccessKey")),
        },
        required=(
            "clientId",
            "name",
            "description",
            "tenant",
            "scopes",
            "audiences",
            "disabled",
            "createdTime",
        ),
    ),
    _EXPIRY: obj(
        {
            "expiresIn": integer(1, _MAX_SECONDS),
            "expiresAt": string(format="date-time", description="in the future, at most 10 years ahead"),
        },
        description="expiresIn or expiresAt, not both; neither: never expires",
    ),
    "AccessKey": obj(_ACCESS_KEY, required=("keyId", "clientId", "generationDate")),
    "NewAccessKey": obj(
        {
            **_ACCESS_KEY,
            "accessKey": string(description="clientId.keyId.accountId.base64(PKCS#8); shown once"),
        },
        required=("keyId", "clientId", "generationDate", "accessKey"),
    ),
    "Secret": obj(_SECRET, required=("secretId", "clientId", "createdTime")),
    "NewSecret": obj(
        {**_SECRET, "clientSecret": string(description="shown once")}, required=("secretId", "clientSecret")
    ),
    "PublicKeyInput": obj(
        {
            "jwk": {"type": "object", "description": "a public JWK (RSA 2048+, EC P-256, OKP Ed25519)"},
            "pem": _S,
        },
        description="exactly one of jwk or pem",
    ),
    "PublicKey": obj(_PUBLIC_KEY, required=("keyId", "clientId", "alg", "jwk")),
    "RoleInput": obj({"roleId": string(pattern=_ID), **_ROLE_FIELDS}, required=("permissions",)),
    "RoleCreate": obj({"roleId": string(pattern=_ID), **_ROLE_FIELDS}, required=("roleId", "permissions")),
    "Role": obj(
        {
            "roleId": _S,
            "name": _S,
            "description": nullable(_S),
            "permissions": _ROLE_FIELDS["permissions"],
            "createdTime": _TIME,
            "lastUpdated": _TIME,
        },
        required=("roleId", "name", "description", "permissions"),
    ),
    "RecordInput": obj({"recordId": string(pattern=_ID), **_RECORD_FIELDS}, required=("statements",)),
    "Record": obj(
        {
            "recordId": _S,
            "name": _S,
            "description": nullable(_S),
            "users": array(obj({"userId": _S})),
            "admins": array({"type": "object"}),
            "statements": array(obj({"roles": array(_S), "resources": array(obj({"resourceUri": _S}))})),
            "status": _S,
            "createdTime": _TIME,
            "lastUpdated": _TIME,
        },
        required=("recordId", "name", "description", "users", "statements"),
    ),
    "Check": obj(
        {"userId": _S, "resourceUri": _S, "permission": _S, "allowed": {"type": "boolean"}},
        required=("userId", "resourceUri", "permission", "allowed"),
    ),
    "AuditEntry": obj(
        {
            "id": integer(),
            "time": _TIME,
            "actor": _S,
            "action": _S,
            "target": _S,
            "detail": {"type": "object"},
        },
        required=("id", "time", "actor", "action", "target", "detail"),
    ),
    "Usage": obj(
        {"usage": array(obj({"hour": _TIME, "route": _S, "allowed": integer(0), "refused": integer(0)}))},
        required=("usage",),
    ),
    "ClientIssuer": obj({"issuer": _S, "jwks_uri": _S}, required=("issuer", "jwks_uri")),
    "Jwks": obj({"keys": array(obj({"kty": _S, "kid": _S}, required=("kty",)))}, required=("keys",)),
    "ConnectionInput": {
        "type": "object",
        "required": ["authorizationUrl", "tokenUrl", "clientId"],
        "properties": {
            "connectionId": _S,
            "name": _S,
            "authorizationUrl": _S,
            "tokenUrl": _S,
            "revocationUrl": _S,
            "clientId": _S,
            "clientSecret": {"type": "string", "writeOnly": True, "description": "sealed; never returned"},
            "clientSecretEnv": {"type": "string", "description": "over the API: GATEWAY_CONNECTION_* only"},
            "tokenEndpointAuthMethod": {"enum": ["client_secret_basic", "client_secret_post", "none"]},
            "scopes": {"type": "array", "items": _S},
            "resourceTemplate": _S,
            "allowedRedirects": {"type": "array", "items": _S},
            "authorizationParams": {"type": "object", "additionalProperties": _S},
        },
    },
    "Connection": {
        "type": "object",
        "properties": {
            "connectionId": _S,
            "type": _S,
            "name": _S,
            "authorizationUrl": _S,
            "tokenUrl": _S,
            "revocationUrl": {"type": ["string", "null"]},
            "clientId": _S,
            "clientSecretEnv": {"type": ["string", "null"]},
            "hasClientSecret": {"type": "boolean"},
            "tokenEndpointAuthMethod": _S,
            "scopes": {"type": "array", "items": _S},
            "resourceTemplate": _S,
            "allowedRedirects": {"type": "array", "items": _S},
            "source": {"enum": ["api", "config"]},
            "createdTime": _S,
            "lastUpdated": _S,
        },
    },
    "UserConnectionCredentials": {
        "type": "object",
        "properties": {"accessToken": _S, "tokenType": _S, "expiresIn": {"type": "integer"}},
    },
    "CredentialsInput": {
        "type": "object",
        "required": ["refreshToken"],
        "properties": {"refreshToken": _S, "accessToken": _S, "expiresIn": {"type": "integer"}},
    },
    "AuthorizeInput": {"type": "object", "properties": {"redirectAfter": _S}},
    "AuthorizationUrl": {"type": "object", "properties": {"authorizationUrl": _S}},
}
for _name, _plural, _item in (
    ("ClientList", "clients", "Client"),
    ("AccessKeyList", "accessKeys", "AccessKey"),
    ("SecretList", "secrets", "Secret"),
    ("PublicKeyList", "publicKeys", "PublicKey"),
    ("RoleList", "roles", "Role"),
    ("RecordList", "records", "Record"),
    ("AuditList", "auditEntries", "AuditEntry"),
    ("ConnectionList", "connections", "Connection"),
):
    _SCHEMAS[_name] = listing(_plural, ref(_item))
# Credential lists are not paged: `{"<plural>": [...]}`.
for _name in ("AccessKeyList", "SecretList", "PublicKeyList"):
    _SCHEMAS[_name]["required"] = [_SCHEMAS[_name]["required"][0]]

# Trusted identities (contract §5).
_OPERATIONS += [
    (
        "post",
        "/v1/identities",
        "Trust an external identity (or link one from a token: {jwt, preferredAudience, clientId})",
        "gateway:identities:write",
        "IdentityInput",
        201,
        "Identity",
    ),
    (
        "get",
        "/v1/identities",
        "List trusted identities",
        "gateway:identities:read",
        None,
        200,
        "IdentityList",
    ),
    (
        "get",
        "/v1/identities/{identityId}",
        "Get a trusted identity",
        "gateway:identities:read",
        None,
        200,
        "Identity",
    ),
    (
        "put",
        "/v1/identities/{identityId}",
        "Replace a trusted identity",
        "gateway:identities:write",
        "IdentityInput",
        200,
        "Identity",
    ),
    (
        "delete",
        "/v1/identities/{identityId}",
        "Stop trusting an identity (its exchanged tokens end too)",
        "gateway:identities:write",
        None,
        204,
        None,
    ),
]
_IDENTITY_FIELDS: dict[str, Any] = {
    "identityId": _S,
    "issuer": _S,
    "audience": _S,
    "conditions": {"type": "object", "additionalProperties": _S},
    "clientId": _S,
    "jwksUri": _S,
    "preset": {"type": "string", "enum": ["github-actions", "gitlab", "kubernetes"]},
}
_SCHEMAS["IdentityInput"] = {
    "type": "object",
    "properties": {**_IDENTITY_FIELDS, "jwt": _S, "preferredAudience": _S},
}
_SCHEMAS["Identity"] = {
    "type": "object",
    "properties": {
        **_IDENTITY_FIELDS,
        "source": {"type": "string", "enum": ["api", "config"]},
        "createdTime": _S,
        "lastUpdated": _S,
    },
}
_SCHEMAS["IdentityList"] = {
    "type": "object",
    "properties": {
        "identities": {"type": "array", "items": {"$ref": "#/components/schemas/Identity"}},
        "pagination": {"$ref": "#/components/schemas/Pagination"},
    },
}


# The forward-auth decision endpoint (docs/forward-auth.md): any method, the request decided in
# the path or in X-Forwarded-*/X-Original-* headers; only 200, 401 and 403.
_DECISION = {
    "summary": "Forward-auth: may this request pass? (for nginx, Traefik, Caddy, Envoy)",
    "description": "Any method. Decides the method and URI after /v1/decisions, or those in "
    "X-Forwarded-Method/X-Forwarded-Uri or X-Original-Method/X-Original-URI from a trusted proxy. "
    "200 carries the X-Gateway-* identity headers; every refusal is a 401 or a 403.",
    "security": [{"bearer": []}],
    "parameters": [{"name": "path", "in": "path", "required": True, "schema": _S}],
    "responses": {
        "200": {"description": "allowed: the identity headers to copy upstream"},
        "401": {
            "description": "no valid credential",
            "content": {"application/json": {"schema": ref("Error")}},
        },
        "403": {
            "description": "refused (the error says why: access_denied, not_found, invalid_request, ...)",
            "content": {"application/json": {"schema": ref("Error")}},
        },
    },
}
_DECISIONS = {m: _DECISION for m in ("get", "head", "post", "put", "patch", "delete", "options")}


_ERRORS = {
    400: "invalid request (the description names the field)",
    401: "no valid credential",
    403: "permission missing",
    404: "not found (or not allowed, for the check)",
    503: "the store is unreachable (try again)",
}
_WRITE_ERRORS = {
    409: "conflict (the sixth key, an id in use, the last administrator, ...)",
    413: "body too large",
}


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def _operation(op: Operation) -> Schema:
    success: Schema = {"description": "success"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": ref(op.response)}}
    errors = {**_ERRORS, **(_WRITE_ERRORS if op.method in ("post", "put", "patch", "delete") else {})}
    out: Schema = {
        "summary": op.summary,
        "responses": {str(op.status): success, **{str(code): _error(text) for code, text in errors.items()}},
    }
    permission = op.permission
    if permission and permission.startswith("credentials:"):
        out["description"] = (
            f"Needs `{permission}` on the connection's resource for the user "
            "(by default `/user-credentials/refresh-tokens/users/{userId}`)."
        )
    elif permission:
        out["description"] = f"Needs `{permission}` on `/gateway/{permission.split(':')[1]}`."
    if permission or not op.summary.endswith("(public)"):
        out["security"] = [{"bearer": []}]
    if op.request:
        # An empty body reads as {} (contract §7); it is required when {} would be refused.
        needed = bool(_SCHEMAS.get(op.request, {}).get("required"))
        out["requestBody"] = {
            "required": needed,
            "content": {"application/json": {"schema": ref(op.request)}},
        }
    names = [p.strip("{}") for p in op.path.split("/") if p.startswith("{")]
    parameters = [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": op.params.get(n) or _PARAMETERS.get(n, string(min_length=1)),
        }
        for n in names
    ]
    parameters += [{"name": n, "in": "query", "required": False, "schema": s} for n, s in op.query.items()]
    if parameters:
        out["parameters"] = parameters
    return out


def openapi_document(server: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for entry in _OPERATIONS:
        op = entry if isinstance(entry, Operation) else Operation(*entry)
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    paths["/v1/decisions/{path}"] = _DECISIONS
    return {
        "openapi": "3.1.0",
        "info": {"title": "Gateway admin API", "version": __version__},
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
