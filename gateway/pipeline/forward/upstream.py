"""Forwarding one request upstream and streaming the answer back, behind one small interface.

The connections and their pools are in connection.py and pool.py. Here: the request head encoded
once as bytes, the request body pumped with backpressure (read from the caller only as fast as the
upstream takes it), the response relayed as it arrives, the idempotent retry on a pooled
connection the upstream had closed, and every failure turned into BadGateway or GatewayTimeout
(or, once the response has started, into a response cut short), here and nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import BadGateway, GatewayError, GatewayTimeout
from gateway.metrics import observe
from gateway.pipeline.forward.body import RequestBody
from gateway.pipeline.forward.connection import UpstreamBroken, UpstreamConnection, UpstreamTimeout
from gateway.pipeline.forward.headers import response_headers
from gateway.pipeline.forward.pool import Pool
from gateway.policy.model import Upstream

log = logging.getLogger("gateway.forward")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# A whole response in one call: status, headers, body (the server's `gateway.respond` extension).
Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], None]

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
# A request with one of these methods and no body says so (RFC 9110 §8.6), as aiohttp did.
_BODY_EXPECTED = frozenset({"POST", "PUT", "PATCH"})
_CHUNKED = b"transfer-encoding: chunked\r\n"


@dataclass(slots=True)
class Outbound:
    """What goes upstream: built by the proxy after the request passed every check."""

    method: str
    path: str  # canonical, as authorized: the upstream's strip_prefix and base path still apply
    query: bytes
    headers: list[tuple[bytes, bytes]]  # lower-case names, everything but Host and body framing
    lines: bytes  # more headers, encoded (the identity headers: gateway.pipeline.mutate.lines)
    host: bytes | None  # the caller's Host when the upstream preserves it
    body: RequestBody | None
    response_headers: list[tuple[bytes, bytes]]  # added to the response (our X-Request-Id)


class UpstreamClients:
    """The upstream pools of one worker. A reload swaps in new pools for upstreams whose settings
    changed and retires the old ones (in-flight exchanges finish, idle connections close)."""

    def __init__(self) -> None:
        self._pools: dict[Upstream, Pool] = {}
        # By the identity of the policy's Upstream object: hashing the frozen dataclass (every
        # field, per request) showed in profiles. A reload makes new objects; equal ones keep
        # their pool through `_pools`.
        self._by_id: dict[int, tuple[Upstream, Pool]] = {}

    def pool(self, upstream: Upstream) -> Pool:
        known = self._by_id.get(id(upstream))
        if known is not None and known[0] is upstream:
            return known[1]
        pool = self._pools.get(upstream)
        if pool is None:
            pool = self._pools[upstream] = Pool(upstream)
        if len(self._by_id) > 10_000:
            self._by_id.clear()
        self._by_id[id(upstream)] = (upstream, pool)  # holding `upstream` keeps its id unique
        return pool

    def retire(self, live: set[Upstream]) -> None:
        self._by_id.clear()
        for upstream in [u for u in self._pools if u not in live]:
            in_flight = self._pools.pop(upstream).retire()
            log.info(
                "upstream %s reconfigured or removed: idle connections closed, %d in flight finish first",
                upstream.name,
                in_flight,
            )

    async def close(self) -> None:
        self._by_id.clear()
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.retire()


def encode_head(
    method: str, target: bytes, host: bytes, headers: list[tuple[bytes, bytes]], lines: bytes = b""
) -> bytes:
    parts = [method.encode(), b" ", target, b" HTTP/1.1\r\nhost: ", host, b"\r\n"]
    for name, value in headers:
        parts += (name, b": ", value, b"\r\n")
    parts.append(lines)
    return b"".join(parts)


async def forward(
    clients: UpstreamClients,
    upstream: Upstream,
    request: Outbound,
    send: Send,
    respond: Respond | None = None,
) -> int:
    """Send the request upstream and stream the answer back. Returns the status sent. With
    `respond`, an answer that arrived whole goes back in one call rather than as messages.

    Raises a GatewayError only while nothing has been sent downstream yet; once the response has
    started, a failure can only cut the response short (the caller sees it end early).
    """
    pool = clients.pool(upstream)
    method = request.method
    body = request.body
    target = upstream.target_path(request.path).encode()
    if request.query:
        target += b"?" + request.query
    head = encode_head(method, target, request.host or pool.host_header, request.headers, request.lines)
    first = b""
    if body is not None:
        # Take a pooled connection only once the body has begun to arrive (a small one is usually
        # whole by now): a caller who announces a body and sends nothing holds no upstream slot.
        first = await body.read()
        if body.length is None:
            head += _CHUNKED
    elif method in _BODY_EXPECTED and all(name != b"content-length" for name, _ in request.headers):
        head += b"content-length: 0\r\n"
    head += b"\r\n"
    started = time.perf_counter()
    attempts = 1 + (upstream.retries if method in _IDEMPOTENT and body is None else 0)
    for attempt in range(attempts):
        pooled = pool.idle_connection()
        conn, reused = (pooled, True) if pooled is not None else await pool.acquire()
        pump: asyncio.Task[None] | None = None
        try:
            if body is None:
                conn.start(head, method == "HEAD", upstream.read_timeout)
            elif body.done:
                conn.start(head + body.frame(first, last=True), False, upstream.read_timeout)
            else:
                conn.start(head, False, upstream.read_timeout)
                conn.sending = True
                pump = asyncio.ensure_future(_pump(conn, body, first))
            try:
                if not conn.headers_done:
                    await conn.read_head()
            except UpstreamBroken as exc:
                failure = _failure(pump)
                if failure is not None:
                    raise failure from None  # the caller's fault: too large, gone or too slow
                if exc.sent_nothing and reused and attempt + 1 < attempts:
                    continue  # a pooled connection the upstream had closed: safe to try again
                raise _translate(exc) from None
            if respond is not None and (conn.complete or conn.head_only):
                respond(
                    conn.status,
                    response_headers(conn.headers) + request.response_headers,
                    b"" if conn.head_only else conn.take_body(),
                )
                return conn.status
            return await _relay(conn, upstream, request, send)
        finally:
            if pump is not None:
                if not pump.done():
                    pump.cancel()
                    conn.close()  # the upstream answered before it had the whole body
                else:
                    _failure(pump)  # retrieved, so asyncio does not log it as lost
            pool.release(conn)
            observe(pool.duration, time.perf_counter() - started)
    raise BadGateway("upstream broke the response")  # not reached: the last attempt raised


async def _pump(conn: UpstreamConnection, body: RequestBody, first: bytes) -> None:
    """Send the rest of the request body, no faster than the upstream reads it."""
    try:
        conn.write(body.frame(first, last=False))
        while not body.done:
            await conn.drain()
            chunk = await body.read()
            conn.write(body.frame(chunk, last=body.done))
        conn.sending = False
        conn.last_read = asyncio.get_running_loop().time()  # the read timeout starts now
    except BaseException:
        conn.abort()  # the upstream has part of a request: that connection is done
        raise


def _failure(pump: asyncio.Task[None] | None) -> BaseException | None:
    if pump is None or not pump.done() or pump.cancelled():
        return None
    return pump.exception()


async def _relay(conn: UpstreamConnection, upstream: Upstream, request: Outbound, send: Send) -> int:
    status = conn.status
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": response_headers(conn.headers) + request.response_headers,
        }
    )
    if conn.head_only:
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return status
    try:
        chunk = await conn.read_body()
        while chunk:
            if conn.complete:  # read_body took all there was: this is the last chunk
                await send({"type": "http.response.body", "body": chunk, "more_body": False})
                return status  # the last chunk closes the response: one send less per request
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            chunk = await conn.read_body()
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except UpstreamBroken as exc:
        # Headers are out: the only honest thing left is to end the response early, so the
        # caller sees a truncated body rather than a complete-looking one.
        log.warning("upstream %s broke the response mid-stream: %s", upstream.name, exc)
    return status


def _translate(exc: UpstreamBroken) -> GatewayError:
    if isinstance(exc, UpstreamTimeout):
        return GatewayTimeout()
    return BadGateway("upstream broke the response")
