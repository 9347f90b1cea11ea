"""The token server's routes under public_url's path: /oauth/token (oauth/token.py),
/oauth/introspect and /oauth/revoke (oauth/introspection.py), and the discovery documents
(oauth/discovery.py). Every answer carries `Cache-Control: no-store` (discovery excepted).
"""

from __future__ import annotations

from starlette.routing import Route

from gateway.oauth.clients import ClientRequests
from gateway.oauth.discovery import discovery as discovery_endpoint
from gateway.oauth.introspection import TokenStatus
from gateway.oauth.token import TokenEndpoint
from gateway.runtime import Runtime


def routes(runtime: Runtime) -> list[Route]:
    base = runtime.config.public_base_path
    requests = ClientRequests(runtime.config, runtime.identity.client_auth)
    token = TokenEndpoint(runtime, requests)
    status = TokenStatus(runtime, requests)
    discovery = discovery_endpoint(runtime.config)
    return [
        Route(f"{base}/oauth/token", token.token, methods=["POST", "GET", "PUT", "DELETE", "PATCH"]),
        Route(f"{base}/oauth/introspect", status.introspect, methods=["POST", "GET"]),
        Route(f"{base}/oauth/revoke", status.revoke, methods=["POST", "GET"]),
        Route(f"{base}/.well-known/openid-configuration", discovery, methods=["GET"]),
        Route(f"{base}/.well-known/oauth-authorization-server", discovery, methods=["GET"]),
        # RFC 8414 §3.1: for an issuer with a path, the metadata URL inserts `/.well-known/...`
        # between the host and the path.
        *(
            [Route(f"/.well-known/oauth-authorization-server{base}", discovery, methods=["GET"])]
            if base
            else []
        ),
    ]
