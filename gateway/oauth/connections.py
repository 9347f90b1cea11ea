"""GET {public_url}/oauth/connections/{connectionId}/callback: where a vault connection's provider
sends the user's browser at the end of the login flow (gateway.vault.login does the work).

Success is a 303 to the login's `redirectAfter` or a plain page; failures are the usual JSON
errors (400 for a bad, replayed, expired or foreign state; 502 when the provider fails) and
store nothing. Every answer is `no-store` and sends no Referer: the URL carried a code.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from gateway.runtime import Runtime

_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}
_DONE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Connected</title></head>
<body><h1>Connected</h1><p>The account is connected. You can close this window.</p></body></html>
"""


def routes(runtime: Runtime) -> list[Route]:
    assert runtime.identity is not None
    login = runtime.identity.login

    async def callback(request: Request) -> Response:
        query = {k: v for k, v in request.query_params.multi_items()}
        destination = await login.callback(request.path_params["connection_id"], query)
        if destination is not None:
            return RedirectResponse(destination, status_code=303, headers=_HEADERS)
        return HTMLResponse(_DONE, headers=_HEADERS)

    base = runtime.config.public_base_path
    return [Route(f"{base}/oauth/connections/{{connection_id}}/callback", callback, methods=["GET"])]
