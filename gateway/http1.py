"""The public listener's HTTP/1.1 server: an asyncio Protocol on llhttp (httptools) that calls an
ASGI app, made for the proxy's hot path. Module of ~460 lines on purpose: one connection's state
machine reads best in one place.

Why not uvicorn here (issue 8, measured on the full gateway in benchmarks/RESULTS.md): uvicorn's
protocol costs ~30 µs more per request than this one, and it has no request-head timeout (550
slowloris connections stayed open for 600 s). What this server guarantees:

- parsing by llhttp in its strict mode: Content-Length with Transfer-Encoding, two different
  Content-Lengths, obfuscated codings and bad chunk sizes are refused with 400 and the connection
  closed, so a request can never reach the upstream as two (request smuggling);
- the request line counts in `limits.max_header_bytes` and the header count in `max_headers`
  (431, then close);
- `timeouts.header` from a request's first byte (or the connection's start) to the end of its
  head: a slowloris connection gets 408 and is closed; `timeouts.keepalive` closes idle ones;
- the raw path in the scope (`raw_path`), headers as lower-cased bytes, bodies streamed with
  backpressure both ways (reading pauses while the app has not taken the body, `send` waits while
  the caller's socket is full);
- pipelining: requests are answered in order, one at a time; reading pauses while one waits;
- a response cut short by the app (upstream broke) ends the connection, so the caller sees it;
- graceful shutdown: `Listener.close` stops accepting at once (new connections are refused, not
  reset), closes idle connections, lets in-flight requests finish, then cuts the rest.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from gateway.config import Config
from gateway.errors import ClientGone, GatewayError, HeadersTooLarge, InvalidRequest, RequestTimeout, render

log = logging.getLogger("gateway.http")

App = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_BODY_HIGH_WATER = 256 * 1024  # request body bytes held for the app before reading pauses
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CHUNKED = b"transfer-encoding: chunked\r\n"


class _Refuse(Exception):
    def __init__(self, error: GatewayError) -> None:
        self.error = error


class Listener:
    """One listening socket and its connections."""

    def __init__(self, app: App, config: Config) -> None:
        self.app = app
        self.config = config
        self.connections: set[HttpProtocol] = set()
        self.closing = False
        self._server: asyncio.AbstractServer | None = None

    async def start(self, sock: Any) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: HttpProtocol(self, loop), sock=sock, backlog=2048)

    async def close(self, timeout: float, sock: socket.socket | None = None) -> None:
        """Stop accepting, close idle connections, wait up to `timeout` for in-flight requests."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        if sock is not None:
            sock.close()
        for conn in list(self.connections):
            conn.shut_when_idle()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.05)
        self.abort_all()

    def abort_all(self) -> None:
        for conn in list(self.connections):
            conn.abort()


class _Cycle:
    """One request and its response."""

    __slots__ = (
        "body",
        "buffered",
        "chunked",
        "complete",
        "continue_expected",
        "done",
        "head",
        "keep_alive",
        "method",
        "proto",
        "scope",
        "started",
        "timed_out",
        "waiter",
    )

    def __init__(
        self, proto: HttpProtocol, scope: dict[str, Any], method: str, keep_alive: bool, expect: bool
    ) -> None:
        self.proto = proto
        self.scope = scope
        self.method = method
        self.keep_alive = keep_alive
        self.continue_expected = expect
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False  # the whole request body arrived
        self.started = False  # response head written
        self.done = False  # response complete
        self.chunked = False
        self.head = b""
        self.waiter: asyncio.Future[None] | None = None
        self.timed_out = False

    # The app's ASGI receive and send, bound once per request (no closures).
    def receive(self) -> Awaitable[dict[str, Any]]:
        return self.proto._receive(self)

    def send(self, message: dict[str, Any]) -> Awaitable[None]:
        return self.proto._send(self, message)

    def respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """A whole response in one write, without ASGI messages: the proxy's common case (the
        upstream's answer arrived complete), offered to the app as the ASGI extension
        `gateway.respond` (scope["extensions"])."""
        proto = self.proto
        if proto.closed or proto.transport is None:
            raise ClientGone()
        if self.started:
            raise RuntimeError("respond() after the response started")
        head = proto._head(self, status, headers)
        if self.method == "HEAD":
            body = b""
        elif self.chunked:  # no Content-Length from the app: the length is known after all
            head = head.replace(_CHUNKED, b"content-length: %d\r\n" % len(body))
            self.chunked = False
        self.started = True
        self.done = True
        proto.transport.write(head + body)


class HttpProtocol(asyncio.Protocol):
    def __init__(self, listener: Listener, loop: asyncio.AbstractEventLoop) -> None:
        self.listener = listener
        self.loop = loop
        config = listener.config
        self.max_bytes = config.limits.max_header_bytes
        self.max_headers = config.limits.max_headers
        self.header_timeout = config.timeouts.header
        self.keepalive_timeout = config.timeouts.keepalive
        self.body_idle = config.timeouts.body_idle
        self.parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.client: tuple[str, int] | None = None
        self.server: tuple[str, int] | None = None
        self.closed = False
        self.cycle: _Cycle | None = None  # the request being answered
        self.parsing: _Cycle | None = None  # the request being received (the same, or a pipelined one)
        self.queue: deque[_Cycle] = deque()
        self.write_paused = False
        self.drain: asyncio.Future[None] | None = None
        self.read_paused = False
        self.deadline: float | None = None  # for the head, or the keep-alive idle time
        self.timer: asyncio.TimerHandle | None = None
        self.reading_head = False  # between a request's first byte and the end of its head
        self.task: asyncio.Task[None] | None = None  # the connection's requests, once one came
        self.idle: asyncio.Future[None] | None = None  # that task waiting for the next request
        # The connection's scratch space for the app (`gateway.connection`): what is worth keeping
        # from one request to the next on the same connection (gateway.pipeline.decide). It holds
        # the last Authorization header, a secret: never log it or put it in an error.
        self.scratch: dict[str, Any] = {}
        self._reset_head()

    def _reset_head(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.expect = False  # Expect: 100-continue
        self.head_bytes = 16  # the request line's method, version and separators

    # -- timers: one per connection, re-armed lazily ----------------------------------------------

    def _watch(self, seconds: float) -> None:
        self.deadline = self.loop.time() + seconds
        if self.timer is None:
            self.timer = self.loop.call_at(self.deadline, self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        if self.deadline is None or self.closed:
            return
        if self.loop.time() < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._on_timer)
        elif self.cycle is not None and self.cycle.waiter is not None:
            self.cycle.timed_out = True  # the app waits for a body that stopped coming
            _wake(self.cycle)
        elif self.reading_head:
            self._refuse(RequestTimeout("the request head did not arrive in time"))
        else:
            self._close()  # an idle keep-alive connection (or one that never sent anything): no answer

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.client = transport.get_extra_info("peername")
        self.server = transport.get_extra_info("sockname")
        self.listener.connections.add(self)
        self._watch(self.header_timeout)

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            return  # the connection is lost: nothing more is read
        try:
            parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            self._refuse(refused.error if isinstance(refused, _Refuse) else InvalidRequest())
        except httptools.HttpParserUpgrade:
            # Upgrades (WebSocket, h2c) are not proxied: the request was answered as an ordinary
            # one (Upgrade is hop-by-hop, never forwarded); what follows its head is another
            # protocol's bytes, so nothing more is read and the connection ends with the answer.
            for cycle in (self.cycle, *self.queue):
                if cycle is not None:
                    cycle.keep_alive = False
            self._pause_reading()
        except httptools.HttpParserError:
            self._refuse(InvalidRequest("malformed HTTP request"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.scratch.clear()  # nothing the connection kept outlives it
        self.listener.connections.discard(self)
        for cycle in (self.cycle, *self.queue):
            if cycle is not None:
                _wake(cycle)
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)
        if self.idle is not None and not self.idle.done():
            self.idle.set_result(None)
        # Let go of what would keep a closed connection in memory: its pending timer (for up to
        # timeouts.header after the last request), and the reference cycles through the parser's
        # callbacks and through requests never run (pipelined ones), which only the garbage
        # collector would free. Reference counting then frees the connection now: with many short
        # connections, they piled up by the tens of thousands.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.deadline = None
        self.parser = None
        self.parsing = None
        for cycle in self.queue:
            cycle.scope.pop("extensions", None)
        self.queue.clear()

    def eof_received(self) -> bool | None:
        return False

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    # -- llhttp callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset_head()
        self.reading_head = True
        self._watch(self.header_timeout)  # from the first byte of each request

    def on_url(self, url: bytes) -> None:
        self.url += url  # llhttp may hand the target over in pieces
        self.head_bytes += len(url)
        if self.head_bytes > self.max_bytes:
            raise _Refuse(HeadersTooLarge(f"request line and headers are over {self.max_bytes} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.max_bytes:
            raise _Refuse(HeadersTooLarge(f"request line and headers are over {self.max_bytes} bytes"))
        if len(self.headers) >= self.max_headers:
            raise _Refuse(HeadersTooLarge(f"more than {self.max_headers} request headers"))
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.deadline = None  # the head is in: the header timer stands down
        self.reading_head = False
        parser = self.parser
        assert parser is not None  # this is the parser's own callback
        method = parser.get_method().decode("ascii")
        url = self.url
        if url[:1] != b"/":
            if method == "OPTIONS" and url == b"*":
                raise _Refuse(InvalidRequest("OPTIONS * is not supported"))
            parsed = httptools.parse_url(url)  # absolute form: keep the path and query
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        raw_path, _, query = url.partition(b"?")
        text = raw_path.decode("latin-1")
        expect = self.expect
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": parser.get_http_version(),
            "method": method,
            "scheme": "http",
            "path": unquote(text) if "%" in text else text,
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": self.headers,
            "client": self.client,
            "server": self.server,
        }
        cycle = _Cycle(self, scope, method, parser.should_keep_alive() and not self.listener.closing, expect)
        scope["extensions"] = {"gateway.respond": cycle.respond, "gateway.connection": self.scratch}
        self.parsing = cycle
        if self.cycle is None:
            self._run(cycle)
        else:
            self.queue.append(cycle)  # pipelined: answered after the one in progress
            self._pause_reading()

    def on_body(self, body: bytes) -> None:
        cycle = self.parsing
        if cycle is None or cycle.done:
            return  # the answer went out already: the rest of the body is read and dropped
        cycle.body.append(body)
        cycle.buffered += len(body)
        if cycle.buffered >= _BODY_HIGH_WATER:
            self._pause_reading()
        _wake(cycle)

    def on_message_complete(self) -> None:
        cycle = self.parsing
        self.parsing = None
        if cycle is not None:
            cycle.complete = True
            _wake(cycle)

    # -- running the app ---------------------------------------------------------------------------

    def _run(self, cycle: _Cycle) -> None:
        self.cycle = cycle
        waiter = self.idle
        if waiter is not None and not waiter.done():  # the connection's task waits for this request
            self.idle = None
            waiter.set_result(None)
        elif self.task is None:  # the first request, or the task was cancelled (shutdown)
            self.task = self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        """The connection's requests, one after the other, in one task: a task per request cost
        ~6 µs (creating it, registering it, and a loop turn before it starts)."""
        try:
            while not self.closed:
                cycle = self.cycle
                if cycle is None:
                    self.idle = self.loop.create_future()
                    await self.idle  # _run, or connection_lost, wakes it
                    continue
                await self._call(cycle)
        finally:
            self.task = None
            self.idle = None

    async def _call(self, cycle: _Cycle) -> None:
        try:
            await self.listener.app(cycle.scope, cycle.receive, cycle.send)
        except ClientGone:
            pass
        except asyncio.CancelledError:
            self._close()
            raise
        except BaseException:
            log.exception("the app failed")
            if not cycle.started and not self.closed:
                cycle.keep_alive = False
                status, headers, body = render(GatewayError(), "-")
                await cycle.send({"type": "http.response.start", "status": status, "headers": headers})
                await cycle.send({"type": "http.response.body", "body": body})
        finally:
            # The scope's `gateway.respond` is bound to the cycle, which holds the scope: a
            # reference cycle that only the garbage collector would free, with every object the
            # request made hanging on it. Breaking it lets reference counting free the request at
            # once (the collector ran every ~450 requests and cost ~5 µs per request).
            cycle.scope.pop("extensions", None)
            if not cycle.done:
                self._close()  # the response was cut short: only closing says so
            self._finished(cycle)

    def _finished(self, cycle: _Cycle) -> None:
        self.cycle = None
        if self.closed:
            return
        if not cycle.keep_alive or not cycle.complete:
            # The caller will not be answered again on this connection, or its body was not read
            # to the end (we answered early): close rather than parse what is left.
            self._close()
            return
        if self.queue:
            self.cycle = self.queue.popleft()  # the connection's task takes it next
            return
        self._resume_reading()
        if self.parsing is None:
            self._watch(self.keepalive_timeout)

    async def _receive(self, cycle: _Cycle) -> dict[str, Any]:
        while not cycle.body and not cycle.complete:
            if self.closed or cycle.done:
                return {"type": "http.disconnect"}
            if cycle.continue_expected and self.transport is not None:
                cycle.continue_expected = False
                self.transport.write(_CONTINUE)
            self._resume_reading()
            self._watch(self.body_idle)
            cycle.waiter = self.loop.create_future()
            await cycle.waiter
            cycle.waiter = None
            self.deadline = None
            if cycle.timed_out:
                raise RequestTimeout()
        if self.closed and not cycle.complete:
            return {"type": "http.disconnect"}
        body = b"".join(cycle.body) if len(cycle.body) != 1 else cycle.body[0]
        cycle.body = []
        cycle.buffered = 0
        if self.read_paused and not self.queue:
            self._resume_reading()
        return {"type": "http.request", "body": body, "more_body": not cycle.complete}

    async def _send(self, cycle: _Cycle, message: dict[str, Any]) -> None:
        if self.closed:
            raise ClientGone()
        transport = self.transport
        assert transport is not None
        if message["type"] == "http.response.start":
            cycle.head = self._head(cycle, message["status"], message.get("headers", ()))
            cycle.started = True
            return
        if message["type"] != "http.response.body" or cycle.done:
            return
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        if cycle.method == "HEAD":
            body = b""
        if cycle.head:
            head, cycle.head = cycle.head, b""
            if cycle.chunked and not more:
                # The whole body came in one message: its length is known after all.
                head = head.replace(_CHUNKED, b"content-length: %d\r\n" % len(body))
                cycle.chunked = False
            transport.write(head + (_chunk(body, more) if cycle.chunked else body))
        elif cycle.chunked:
            transport.write(_chunk(body, more))
        elif body:
            transport.write(body)
        if not more:
            cycle.done = True
        elif self.write_paused:
            self.drain = self.loop.create_future()
            await self.drain
            self.drain = None
            if self.closed:
                raise ClientGone()

    def _head(self, cycle: _Cycle, status: int, headers: Any) -> bytes:
        line = _STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status
        parts = [line]
        framed = False
        for name, value in headers:
            if name == b"content-length":
                framed = True
            elif name == b"connection" and value.lower() == b"close":
                cycle.keep_alive = False
                continue
            parts += (name, b": ", value, b"\r\n")
        bodiless = status < 200 or status in (204, 304)
        if not framed and not bodiless and cycle.method != "HEAD":
            if cycle.scope["http_version"] == "1.1":
                cycle.chunked = True
                parts.append(_CHUNKED)
            else:
                cycle.keep_alive = False  # HTTP/1.0: the end of the connection ends the body
        if not cycle.keep_alive or self.listener.closing:
            cycle.keep_alive = False
            parts.append(b"connection: close\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    # -- refusing, pausing, closing ---------------------------------------------------------------

    def _refuse(self, error: GatewayError) -> None:
        """Answer a request the parser refused, then close (the stream is no longer trusted)."""
        if self.closed or self.transport is None:
            return
        if self.cycle is None or self.cycle.done:
            status, headers, body = render(error, "-")
            head = _STATUS_LINES[status] + b"".join(n + b": " + v + b"\r\n" for n, v in headers)
            self.transport.write(head + b"connection: close\r\n\r\n" + body)
        self._close()

    def shut_when_idle(self) -> None:
        if self.cycle is None and self.parsing is None:
            self._close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def _pause_reading(self) -> None:
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()


def _wake(cycle: _Cycle) -> None:
    waiter = cycle.waiter
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _chunk(body: bytes, more: bool) -> bytes:
    framed = b"%x\r\n" % len(body) + body + b"\r\n" if body else b""
    return framed if more else framed + b"0\r\n\r\n"
