"""The forward-auth decision endpoint (contract §4): `/v1/decisions{path*}`.

nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth` and Envoy `ext_authz` ask it
whether a request may pass, then forward the request themselves. It runs the proxy's own stages
(canonical path → match route → authenticate → authorize → mutate: `gateway.pipeline.decide`)
and answers:

- 200 with the identity headers the proxy would have added (signed X-Gateway-Identity included)
  for the front proxy to copy upstream, and, when `decisions.cache_max_age` is on,
  `Cache-Control: private, max-age=N` plus `X-Accel-Expires: N` (what nginx's proxy_cache reads),
  and `X-Envoy-Auth-Headers-To-Remove` naming the identity headers it does not carry;
- 401 (with WWW-Authenticate) or 403, and nothing else: nginx turns any other status of an auth
  subrequest into a 500. So an unmatched (404) or ambiguous (400) URI, a store outage (503,
  fail closed) and even a bug of ours (500) are 403 here, with the real `error` in the JSON body.

What is decided is the original method and URI. From a peer in `trusted_proxies` they come from
X-Forwarded-Method + X-Forwarded-Uri (Traefik, Caddy) or X-Original-Method + X-Original-URI
(nginx); without those headers, and always for any other peer, from the decision request itself:
its method and the path after the prefix (Envoy's ext_authz sends the original path after its
`path_prefix`). So a caller that reaches the endpoint directly cannot choose what is decided, and
original-request headers that disagree with each other are refused rather than picked from.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from gateway.errors import GatewayError, InvalidRequest, NotFound, ServerError, ServiceUnavailable, render
from gateway.metrics import UNMATCHED, begin_request, decision_label, observe_request
from gateway.paths import canonicalize
from gateway.pipeline.decide import grant, grant_now, match_route
from gateway.pipeline.forward.headers import is_gateway_header, request_id_of, sort_inbound, trusted_peer
from gateway.pipeline.mutate import NAMES
from gateway.runtime import Runtime
from gateway.store import StoreError

log = logging.getLogger("gateway.decisions")
access = logging.getLogger("gateway.access")

Scope = dict[str, Any]
ASGIApp = Any

PREFIX = "/v1/decisions"
_METHOD_HEADERS = (b"x-forwarded-method", b"x-original-method")
_URI_HEADERS = (b"x-forwarded-uri", b"x-original-uri")
IDENTITY_HEADERS = frozenset(NAMES)
_ORIGINAL_HEADERS = frozenset(_METHOD_HEADERS + _URI_HEADERS)
_METHOD = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}$")  # an RFC 9110 token


class DecisionApp:
    """`prefix` + `{path*}` answers decisions; anything else goes to `other` (the admin API on
    the admin listener), or is a 404 on the decision listener of its own."""

    def __init__(self, runtime: Runtime, prefix: str = PREFIX, other: ASGIApp | None = None) -> None:
        self.runtime = runtime
        self.prefix = prefix.encode()
        self.other = other
        max_age = runtime.config.decisions.cache_max_age
        self.cache_headers = [
            # X-Accel-Expires first: nginx before 1.23 lets whichever of the two comes first win.
            (b"x-accel-expires", str(max_age).encode()),
            (b"cache-control", f"private, max-age={max_age}".encode() if max_age else b"no-store"),
        ]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        raw_path: bytes = scope.get("raw_path") or scope.get("path", "").encode()
        prefix = self.prefix
        if scope["type"] == "http" and raw_path.startswith(prefix):
            rest = raw_path[len(prefix) :]
            if not rest or rest[:1] == b"/":
                await self.decide(scope, rest, send)
                return
        if self.other is not None:
            await self.other(scope, receive, send)
        elif scope["type"] == "http":
            await _send_error(send, NotFound(f"decisions are answered under {PREFIX}/"), b"-", decision=False)

    async def decide(self, scope: Scope, rest: bytes, send: Any) -> None:
        started = time.perf_counter()
        begin_request()
        request_id = os.urandom(12).hex().encode()
        method: str = scope["method"]
        route_id = UNMATCHED
        decision = "invalid"
        status = 403
        try:
            config = self.runtime.config
            inbound = sort_inbound(
                scope["headers"], config.limits.max_header_bytes, config.limits.max_headers
            )
            request_id = request_id_of(inbound, request_id)
            method, uri = self.original(scope, rest)
            raw_path, _, query = uri.partition(b"?")
            segments, path = canonicalize(raw_path)
            policy = self.runtime.policy.current
            match = match_route(policy, method, segments)
            route_id = match.route.id
            granted = grant_now(
                self.runtime, policy, match, method, path, inbound.authorization, query
            ) or await grant(self.runtime, policy, match, method, path, inbound.authorization, query)
            decision = granted.decision
            status = 200
            headers = [*granted.headers, *self.cache_headers, (b"x-request-id", request_id)]
            # Envoy removes these from the request (it cannot drop a caller's X-Gateway-* itself):
            # the identity headers this answer leaves out, and any other spelling it was sent.
            spoofed = {name for name, _ in scope["headers"] if is_gateway_header(name)}
            remove = (spoofed | IDENTITY_HEADERS) - {name for name, _ in granted.headers}
            if remove:
                headers.append((b"x-envoy-auth-headers-to-remove", b",".join(sorted(remove))))
            headers.append((b"content-length", b"0"))
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
        except GatewayError as exc:
            decision = decision_label(exc.status, decision)
            if isinstance(exc, ServerError):
                log.error("decision %s: %s", request_id.decode(), exc.description)
            status = await _send_error(send, exc, request_id)
        except StoreError:
            # The store is out of reach and the caches cannot answer: refuse (fail closed).
            decision = "unavailable"
            status = await _send_error(send, ServiceUnavailable(), request_id)
        except Exception:
            log.exception("decision %s failed inside the gateway", request_id.decode())
            status = await _send_error(send, ServerError(), request_id)
        finally:
            elapsed = time.perf_counter() - started
            observe_request(route_id, method, status, decision, elapsed, front="decisions")
            if self.runtime.config.access_log:
                client = scope.get("client")
                access.info(
                    '%s decision "%s" %d %.1fms route=%s decision=%s request_id=%s',
                    client[0] if client else "-",
                    method if _METHOD.match(method.encode()) else "?",
                    status,
                    elapsed * 1000,
                    route_id,
                    decision,
                    request_id.decode(),
                )

    def original(self, scope: Scope, rest: bytes) -> tuple[str, bytes]:
        """The method and URI (path and query) of the request being decided."""
        found: dict[bytes, list[bytes]] = {}
        for name, value in scope["headers"]:
            if name in _ORIGINAL_HEADERS:
                found.setdefault(name, []).append(value)
        client = scope.get("client")
        peer = client[0] if client else ""
        ignored = ""
        method: str = scope["method"]
        query: bytes = scope["query_string"]
        uri = rest + b"?" + query if rest and query else rest
        if found and trusted_peer(peer, self.runtime.config.trusted_proxies):
            methods = {v for n in _METHOD_HEADERS for v in found.get(n, ())}
            uris = {v for n in _URI_HEADERS for v in found.get(n, ())}
            if any(len(values) > 1 for values in found.values()) or len(methods) > 1 or len(uris) > 1:
                raise InvalidRequest("the original method or URI headers disagree")
            if methods:
                value = methods.pop()
                if not _METHOD.match(value):
                    raise InvalidRequest("the original method is not a valid HTTP method")
                method = value.decode("ascii")
            if uris:
                uri = uris.pop()
        elif found:
            ignored = f" ({', '.join(sorted(n.decode() for n in found))} ignored: the peer is not in trusted_proxies)"
        if not uri:
            raise InvalidRequest(
                "no original URI to decide: send X-Forwarded-Uri or X-Original-URI from a trusted "
                f"proxy, or the path after {PREFIX}{ignored}"
            )
        return method, uri


async def _send_error(send: Any, exc: GatewayError, request_id: bytes, *, decision: bool = True) -> int:
    """The error, rendered as everywhere else; a decision's as a 401 or 403 (module docstring)."""
    status, headers, body = render(exc, request_id.decode())
    if decision and status not in (401, 403):
        status = 403
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
    return status
