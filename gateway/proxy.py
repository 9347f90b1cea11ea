"""The public listener: a plain ASGI app, because this is the hot path.

    canonical path → own endpoint? → match route → authenticate → authorize → mutate → forward

The stages from matching to mutate are `gateway.pipeline.decide`, shared with the forward-auth
decision endpoint (`gateway.decisions`), so both front doors decide alike.

Starlette serves the gateway's own endpoints (`own`); the proxy path writes ASGI messages itself
(measured: Starlette's StreamingResponse alone adds ~115 µs per request). Every GatewayError is
rendered by `errors.render`; any other exception is logged and answered 500, and in no error path
is the request forwarded.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from typing import Any

from gateway.errors import ClientGone, GatewayError, RequestTooLarge, ServerError, ServiceUnavailable, render
from gateway.metrics import UNMATCHED, begin_request, decision_label, observe_request
from gateway.paths import canonicalize
from gateway.pipeline.decide import grant, grant_now, match_route
from gateway.pipeline.forward.body import RequestBody
from gateway.pipeline.forward.headers import forwarding_headers, request_id_of, sort_inbound
from gateway.pipeline.forward.upstream import Outbound, Receive, Send, forward
from gateway.policy.loader import reserved_paths
from gateway.policy.model import Route, parse_template
from gateway.policy.table import RouteTable
from gateway.runtime import Runtime
from gateway.store import StoreError

log = logging.getLogger("gateway.proxy")
access = logging.getLogger("gateway.access")

Scope = dict[str, Any]

# Request ids: a random prefix per worker process and a counter, 24 hex digits like before. Unique
# for correlation (they are not secrets), and a third of the cost of os.urandom per request.
_ID_PREFIX = os.urandom(6).hex().encode()
_ID_COUNTER = itertools.count(1)
ASGIApp = Any


def own_endpoints(base_path: str) -> RouteTable:
    """The gateway's own public endpoints as a table, so they are matched by the same rules."""
    table = RouteTable()
    for i, text in enumerate(reserved_paths(base_path)):
        table.add(Route(f"gateway-own-{i}", "", None, parse_template(text), "", frozenset()))
    return table


class ProxyApp:
    def __init__(self, runtime: Runtime, own: ASGIApp) -> None:
        self.runtime = runtime
        self.own = own
        self.own_table = own_endpoints(runtime.config.public_base_path)
        # The first segments of the own endpoints: most requests are told apart by a set lookup.
        firsts = {text.split("/")[1] for text in reserved_paths(runtime.config.public_base_path)}
        self.own_firsts = None if any("{" in f for f in firsts) else frozenset(firsts)
        self.access_log = runtime.config.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # websockets are not proxied: returning without accepting refuses the handshake
        started = time.perf_counter()
        begin_request()
        method: str = scope["method"]
        request_id = b"%s%012x" % (_ID_PREFIX, next(_ID_COUNTER))
        route_id = UNMATCHED
        decision = "invalid"
        client_id: str | None = None  # the authenticated caller, for the access log
        status = 500
        response_started = False
        try:
            config = self.runtime.config
            inbound = sort_inbound(
                scope["headers"], config.limits.max_header_bytes, config.limits.max_headers
            )
            request_id = request_id_of(inbound, request_id)
            raw_path = scope.get("raw_path")
            if raw_path is None:
                raise ServerError("the server did not pass the raw request path")
            segments, path = canonicalize(raw_path)
            own_firsts = self.own_firsts
            if (own_firsts is None or segments[0] in own_firsts) and self.own_table.match(
                method, segments
            ) is not None:
                route_id = "gateway"
                decision = "public"
                statuses: list[int] = []

                async def tracked(message: Any) -> None:
                    if message["type"] == "http.response.start":
                        statuses.append(message["status"])
                    await send(message)

                response_started = True
                await self.own(scope, receive, tracked)
                status = statuses[0] if statuses else 500
                return
            policy = self.runtime.policy.current
            match = match_route(policy, method, segments)
            route_id = match.route.id
            extensions = scope.get("extensions")
            granted = grant_now(  # public, or warm: no coroutine to create and await
                self.runtime,
                policy,
                match,
                method,
                path,
                inbound.authorization,
                scope["query_string"],
                extensions.get("gateway.connection") if extensions else None,
            ) or await grant(
                self.runtime, policy, match, method, path, inbound.authorization, scope["query_string"]
            )
            decision = granted.decision
            client_id = granted.identity.client_id
            if inbound.content_length is not None and inbound.content_length > config.limits.max_body_bytes:
                raise RequestTooLarge(f"request body is over {config.limits.max_body_bytes} bytes")

            upstream = granted.upstream
            client = scope.get("client")
            forwarded, _client_address = forwarding_headers(
                inbound, client[0] if client else "", scope["scheme"], config.trusted_proxies
            )
            # Headers stay bytes from the socket to the upstream: the caller's (sorted and
            # stripped), the forwarding chain, then what mutate says about the caller (encoded
            # once per route and caller: `granted.lines`).
            headers = inbound.forward
            headers += forwarded
            headers.append((b"x-request-id", request_id))
            if upstream.forward_authorization and granted.identity.forwardable_token is not None:
                headers.append((b"authorization", b"Bearer " + granted.identity.forwardable_token.encode()))
            body = (
                RequestBody(
                    receive,
                    inbound.content_length,
                    config.limits.max_body_bytes,
                    config.timeouts.body_idle,
                    config.timeouts.body_min_rate,
                )
                if inbound.has_body
                else None
            )
            outbound = Outbound(
                method,
                path,
                scope["query_string"],
                headers,
                granted.lines,
                inbound.host if upstream.preserve_host else None,
                body,
                [(b"x-request-id", request_id), *granted.response_headers],
            )
            response_started = True  # from here on, forward() owns the response
            respond = extensions.get("gateway.respond") if extensions else None
            status = await forward(self.runtime.upstreams, upstream, outbound, send, respond)
        except GatewayError as exc:
            status = exc.status
            decision = decision_label(status, decision)
            client_id = exc.client_id or client_id
            if isinstance(exc, ServerError):
                log.error("request %s: %s", request_id.decode(), exc.description)
            await _send_error(send, exc, request_id)
        except ClientGone:
            status = 499  # the caller went away while sending its body (nginx's code for it)
        except StoreError:
            # The store is out of reach and the caches cannot answer: refuse, briefly.
            status = 503
            decision = "unavailable"
            if not response_started:
                await _send_error(send, ServiceUnavailable(), request_id)
        except Exception:
            log.exception("request %s failed inside the gateway", request_id.decode())
            status = 500
            if not response_started:
                await _send_error(send, ServerError(), request_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(route_id, method, status, decision, elapsed)
            if self.access_log:
                client = scope.get("client")
                access.info(
                    '%s "%s %s" %d %.1fms route=%s decision=%s client=%s request_id=%s',
                    client[0] if client else "-",
                    method,
                    _loggable(scope),
                    status,
                    elapsed * 1000,
                    route_id,
                    decision,
                    client_id or "-",
                    request_id.decode(),
                )


def _loggable(scope: Scope) -> str:
    """The request path for the access log: never the query string (callers put secrets there)."""
    raw: bytes = scope.get("raw_path") or b"?"
    return raw[:512].decode("latin-1").translate({c: "?" for c in range(32)})


async def _send_error(send: Send, exc: GatewayError, request_id: bytes) -> None:
    status, headers, body = render(exc, request_id.decode())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
