"""Admin API: a client's usage (issue 14, contract §7).

`GET /v1/clients/{id}/usage?from=…&to=…` → `{"usage": [{"hour", "route", "allowed", "refused"}]}`:
the counts the workers wrote in batches (so the last few seconds may not show yet), one row per
hour and route that saw requests, oldest first. `from` defaults to 24 hours before `to`, `to` to
now; both ISO 8601 with a time zone; at most 31 days at once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.admin.actions import Actions
from gateway.admin.auth import caller_of
from gateway.errors import InvalidRequest
from gateway.identity.expiry import moment_of
from gateway.runtime import Runtime

MAX_SPAN = 31 * 86400


def hour_floor(epoch: float) -> str:
    return datetime.fromtimestamp(epoch // 3600 * 3600, UTC).strftime("%Y-%m-%dT%H:00:00Z")


def routes(runtime: Runtime, actions: Actions) -> list[Route]:
    async def usage(request: Request) -> Response:
        caller = await caller_of(request, runtime)
        client_id = request.path_params["client_id"]
        await actions.client_call(caller, client_id, "read")  # refused (403/404) before the query is read
        query = request.query_params
        end = moment_of(query.get("to"), "to", time.time())
        start = moment_of(query.get("from"), "from", end - 86400)
        if start > end:
            raise InvalidRequest("from: must not be after to")
        if end - start > MAX_SPAN:
            raise InvalidRequest("from: at most 31 days before to")
        # Hours are stored by their start: an hour counts when it overlaps [from, to].
        rows = await actions.usage_of(caller, client_id, hour_floor(start), hour_floor(end + 3600))
        return JSONResponse(
            {
                "usage": [
                    {"hour": r.hour, "route": r.route, "allowed": r.allowed, "refused": r.refused}
                    for r in rows
                ]
            }
        )

    return [Route("/v1/clients/{client_id}/usage", usage, methods=["GET"])]
