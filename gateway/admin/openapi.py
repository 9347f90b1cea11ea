"""GET /openapi.json: the admin API described as OpenAPI 3.1, built from one table."""

from __future__ import annotations

from typing import Any

from gateway import __version__

_ERROR = {"$ref": "#/components/schemas/Error"}

# (method, path, summary, permission, request schema, success status, response schema)
_OPERATIONS: list[tuple[str, str, str, str | None, str | None, int, str | None]] = [
    ("post", "/v1/clients", "Create a service client", "gateway:clients:write", "ClientInput", 201, "Client"),
    ("get", "/v1/clients", "List service clients", "gateway:clients:read", None, 200, "ClientList"),
    ("get", "/v1/clients/{clientId}", "Get a service client", "gateway:clients:read", None, 200, "Client"),
    (
        "put",
        "/v1/clients/{clientId}",
        "Update a service client (fields present)",
        "gateway:clients:write",
        "ClientInput",
        200,
        "Client",
    ),
    (
        "patch",
        "/v1/clients/{clientId}",
        "Update a service client (fields present)",
        "gateway:clients:write",
        "ClientInput",
        200,
        "Client",
    ),
    (
        "delete",
        "/v1/clients/{clientId}",
        "Delete a service client and its keys",
        "gateway:clients:write",
        None,
        204,
        None,
    ),
    (
        "post",
        "/v1/clients/{clientId}/access-keys",
        "Create an access key (returned once)",
        "gateway:clients:write",
        None,
        201,
        "NewAccessKey",
    ),
    (
        "get",
        "/v1/clients/{clientId}/access-keys",
        "List active access keys",
        "gateway:clients:read",
        None,
        200,
        "AccessKeyList",
    ),
    (
        "delete",
        "/v1/clients/{clientId}/access-keys/{keyId}",
        "Revoke an access key",
        "gateway:clients:write",
        None,
        204,
        None,
    ),
    (
        "post",
        "/v1/clients/{clientId}/secrets",
        "Create a client secret (returned once)",
        "gateway:clients:write",
        None,
        201,
        None,
    ),
    (
        "get",
        "/v1/clients/{clientId}/secrets",
        "List active client secrets (ids only)",
        "gateway:clients:read",
        None,
        200,
        None,
    ),
    (
        "delete",
        "/v1/clients/{clientId}/secrets/{secretId}",
        "Revoke a client secret",
        "gateway:clients:write",
        None,
        204,
        None,
    ),
    (
        "post",
        "/v1/clients/{clientId}/public-keys",
        "Register a public key ({jwk} or {pem}) for private_key_jwt",
        "gateway:clients:write",
        None,
        201,
        None,
    ),
    (
        "get",
        "/v1/clients/{clientId}/public-keys",
        "List registered public keys",
        "gateway:clients:read",
        None,
        200,
        None,
    ),
    (
        "delete",
        "/v1/clients/{clientId}/public-keys/{keyId}",
        "Revoke a registered public key",
        "gateway:clients:write",
        None,
        204,
        None,
    ),
    ("post", "/v1/roles", "Create a role", "gateway:roles:write", "Role", 201, "Role"),
    ("get", "/v1/roles", "List roles", "gateway:roles:read", None, 200, "RoleList"),
    ("get", "/v1/roles/{roleId}", "Get a role", "gateway:roles:read", None, 200, "Role"),
    ("put", "/v1/roles/{roleId}", "Create or replace a role", "gateway:roles:write", "Role", 200, "Role"),
    ("delete", "/v1/roles/{roleId}", "Delete a role", "gateway:roles:write", None, 204, None),
    ("post", "/v1/records", "Create an access record", "gateway:records:write", "Record", 201, "Record"),
    ("get", "/v1/records", "List access records", "gateway:records:read", None, 200, "RecordList"),
    ("get", "/v1/records/{recordId}", "Get an access record", "gateway:records:read", None, 200, "Record"),
    (
        "put",
        "/v1/records/{recordId}",
        "Create or replace an access record",
        "gateway:records:write",
        "Record",
        200,
        "Record",
    ),
    ("delete", "/v1/records/{recordId}", "Delete an access record", "gateway:records:write", None, 204, None),
    (
        "get",
        "/v1/users/{userId}/resources/{resourceUri}/permissions/{permission}",
        "Check a permission: 200 allowed, 404 not (another user's needs gateway:authorization:read)",
        None,
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/audit",
        "Who changed what, when (newest first)",
        "gateway:audit:read",
        None,
        200,
        "AuditList",
    ),
    (
        "get",
        "/v1/clients/{clientId}/.well-known/openid-configuration",
        "A client's issuer document (public)",
        None,
        None,
        200,
        None,
    ),
    (
        "get",
        "/v1/clients/{clientId}/.well-known/openid-configuration/jwks",
        "A client's access keys as JWKs (public)",
        None,
        None,
        200,
        None,
    ),
    ("get", "/.well-known/jwks.json", "The gateway's public signing keys (public)", None, None, 200, None),
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

_S = {"type": "string"}
_SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "properties": {"error": _S, "error_description": _S, "request_id": _S}},
    "ClientInput": {
        "type": "object",
        "properties": {
            "name": _S,
            "description": _S,
            "tenant": _S,
            "scopes": {"type": "array", "items": _S},
            "audiences": {"type": "array", "items": _S},
            "tokenLifetime": {"type": "integer"},
            "disabled": {"type": "boolean"},
        },
    },
    "Client": {
        "type": "object",
        "properties": {
            "clientId": _S,
            "name": _S,
            "description": _S,
            "tenant": _S,
            "scopes": {"type": "array", "items": _S},
            "audiences": {"type": "array", "items": _S},
            "tokenLifetime": {"type": ["integer", "null"]},
            "disabled": {"type": "boolean"},
            "createdTime": _S,
            "lastUpdated": _S,
            "verificationKeys": {"type": "array", "items": {"$ref": "#/components/schemas/AccessKey"}},
        },
    },
    "AccessKey": {"type": "object", "properties": {"keyId": _S, "clientId": _S, "generationDate": _S}},
    "NewAccessKey": {
        "type": "object",
        "properties": {
            "keyId": _S,
            "clientId": _S,
            "generationDate": _S,
            "accessKey": {
                "type": "string",
                "description": "clientId.keyId.accountId.base64(PKCS#8); shown once",
            },
        },
    },
    "Permission": {
        "type": "object",
        "properties": {
            "action": _S,
            "allow": {"type": "boolean"},
            "grant": {"type": "boolean"},
            "delegate": {"type": "boolean"},
        },
    },
    "Role": {
        "type": "object",
        "properties": {
            "roleId": _S,
            "name": _S,
            "description": _S,
            "permissions": {"type": "array", "items": {"$ref": "#/components/schemas/Permission"}},
        },
    },
    "Record": {
        "type": "object",
        "properties": {
            "recordId": _S,
            "name": _S,
            "description": _S,
            "users": {"type": "array", "items": {"type": "object", "properties": {"userId": _S}}},
            "statements": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "roles": {"type": "array", "items": _S},
                        "resources": {
                            "type": "array",
                            "items": {"type": "object", "properties": {"resourceUri": _S}},
                        },
                    },
                },
            },
        },
    },
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
    "Pagination": {
        "type": "object",
        "properties": {"next": {"type": ["object", "null"], "properties": {"cursor": _S}}},
    },
}
for plural, item in (
    ("clients", "Client"),
    ("accessKeys", "AccessKey"),
    ("roles", "Role"),
    ("records", "Record"),
    ("auditEntries", None),
    ("connections", "Connection"),
):
    name = {
        "clients": "ClientList",
        "accessKeys": "AccessKeyList",
        "roles": "RoleList",
        "records": "RecordList",
        "auditEntries": "AuditList",
        "connections": "ConnectionList",
    }[plural]
    items = {"$ref": f"#/components/schemas/{item}"} if item else {"type": "object"}
    _SCHEMAS[name] = {
        "type": "object",
        "properties": {
            plural: {"type": "array", "items": items},
            "pagination": {"$ref": "#/components/schemas/Pagination"},
        },
    }

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
        "401": {"description": "no valid credential", "content": {"application/json": {"schema": _ERROR}}},
        "403": {
            "description": "refused (the error says why: access_denied, not_found, invalid_request, ...)",
            "content": {"application/json": {"schema": _ERROR}},
        },
    },
}
_DECISIONS = {m: _DECISION for m in ("get", "head", "post", "put", "patch", "delete", "options")}


def openapi_document(server: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, permission, request, status, response in _OPERATIONS:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {
                str(status): {"description": "success"}
                if response is None
                else {
                    "description": "success",
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{response}"}}},
                },
                "400": {
                    "description": "invalid request",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "401": {
                    "description": "no valid credential",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "403": {
                    "description": "permission missing",
                    "content": {"application/json": {"schema": _ERROR}},
                },
                "404": {
                    "description": "not found (or not allowed, for the check)",
                    "content": {"application/json": {"schema": _ERROR}},
                },
            },
        }
        if permission and permission.startswith("credentials:"):
            op["description"] = (
                f"Needs `{permission}` on the connection's resource for the user "
                "(by default `/user-credentials/refresh-tokens/users/{userId}`)."
            )
            op["security"] = [{"bearer": []}]
        elif permission:
            op["description"] = f"Needs `{permission}` on `/gateway/{permission.split(':')[1]}`."
            op["security"] = [{"bearer": []}]
        if request:
            op["requestBody"] = {
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}}
            }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": _S} for p in params]
        paths.setdefault(path, {})[method] = op
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
