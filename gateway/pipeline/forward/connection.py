"""One keep-alive HTTP/1.1 connection to an upstream: an asyncio Protocol with llhttp's response
parser (httptools), made for a proxy rather than for applications.

Why not aiohttp's client: it cost ~180 µs of the gateway's ~270 µs per request (issue 8). This
protocol does what forwarding needs and nothing else: the request head arrives already encoded,
response headers stay bytes, bodies are handed on as they arrive with backpressure both ways, and
there is no decompression, cookie jar or redirect handling.

A connection carries one exchange at a time. It is reusable only when its last response was
complete, the upstream allowed keep-alive and nothing arrived that no request asked for; any
parse error, timeout, early close or abandoned response closes it (see `reusable`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import cast

import httptools

# Hand body bytes on in pieces of at most this, and stop reading the upstream while this much
# waits for a slow caller (the upstream then fills its own socket buffer and waits).
HIGH_WATER = 256 * 1024


class UpstreamBroken(Exception):
    """The exchange failed. `sent_nothing`: the upstream closed before any byte of a response
    (a pooled connection it had already dropped), the one case a retry may be safe."""

    def __init__(self, why: str, *, sent_nothing: bool = False) -> None:
        super().__init__(why)
        self.sent_nothing = sent_nothing


class UpstreamTimeout(UpstreamBroken):
    """The upstream sent nothing for longer than its read timeout."""


class UpstreamConnection(asyncio.Protocol):
    headers: list[tuple[bytes, bytes]]
    _body: list[bytes]

    __slots__ = (
        "__weakref__",  # tests follow a connection's lifetime (tests/unit/test_closed_connections.py)
        "_body",
        "_buffered",
        "_drain",
        "_error",
        "_loop",
        "_on_lost",
        "_parser",
        "_read_paused",
        "_timeout",
        "_timer",
        "_waiter",
        "_write_paused",
        "answered",
        "busy",
        "closed",
        "complete",
        "head_only",
        "headers",
        "headers_done",
        "idle_since",
        "keep_alive",
        "last_read",
        "length_known",
        "sending",
        "status",
        "transport",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, on_lost: Callable[[UpstreamConnection], None]
    ) -> None:
        self._loop = loop
        self._on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.busy = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self.last_read = 0.0
        self.sending = False  # forward() is still sending the request body
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.answered = False  # any byte of a response arrived
        self.headers = []
        self.headers_done = False
        self.complete = False
        self.head_only = False
        self.length_known = False
        self.keep_alive = False
        self._body: list[bytes] = []
        self._buffered = 0
        self._error: UpstreamBroken | None = None

    # -- the exchange, driven by forward() --------------------------------------------------

    def start(self, head: bytes, head_only: bool, read_timeout: float) -> None:
        """Send the request head (and a body that came with it) and expect one response."""
        self._reset()
        self.busy = True
        self.head_only = head_only
        self._timeout = read_timeout
        self.last_read = self._loop.time()
        if self._timer is None:  # else the running one re-arms itself (one timer per connection)
            self._timer = self._loop.call_at(self.last_read + read_timeout, self._check_timeout)
        assert self.transport is not None
        self.transport.write(head)

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        """Wait while the upstream's socket buffer is full (it reads our body slower than the
        caller sends it)."""
        if self._write_paused and not self.closed:
            self._drain = self._loop.create_future()
            await self._drain

    async def read_head(self) -> None:
        while not self.headers_done:
            await self._wait()

    def take_body(self) -> bytes:
        """The whole body of a complete response (see `complete`)."""
        body = self._body
        self._body = []
        self._buffered = 0
        return body[0] if len(body) == 1 else b"".join(body)

    async def read_body(self) -> bytes:
        """The body bytes received so far, at least one; b"" once the response is complete.
        Raises UpstreamBroken when the response ends before it is complete."""
        while True:
            if self._body:
                body = self._body
                chunk = body[0] if len(body) == 1 else b"".join(body)
                self._body = []
                self._buffered = 0
                if self._read_paused and self.transport is not None:
                    self._read_paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return b""
            await self._wait()

    def finish(self) -> bool:
        """End the exchange; True when the connection may carry another one."""
        self.busy = False  # the timer, when it fires, sees this and stops
        reusable = (
            self.complete and self.keep_alive and not self.closed and not self.sending and not self._body
        )
        if reusable:
            self.idle_since = self._loop.time()
        else:
            self.close()
        return reusable

    def abort(self) -> None:
        """Give up on the exchange (the request body failed): wake forward() now."""
        self._fail(UpstreamBroken("request abandoned"))

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamBroken) -> None:
        if self._error is None and not self.complete:
            self._error = error
        self.close()
        self._wake()
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    def _check_timeout(self) -> None:
        """The read timeout counts only while forward() waits for the upstream; while it is busy
        writing to a slow caller the upstream is not at fault."""
        self._timer = None
        if self.closed or not self.busy or self.complete:
            return
        now = self._loop.time()
        if self._waiter is None or self.sending:
            self.last_read = now  # the clock starts again when we wait for the upstream
        elif now >= self.last_read + self._timeout:
            self._fail(UpstreamTimeout("upstream timed out"))
            return
        self._timer = self._loop.call_at(self.last_read + self._timeout, self._check_timeout)

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            return  # the connection is lost
        if not self.busy or self.complete:
            # Bytes no request asked for: whatever they are, this connection cannot be trusted.
            self._fail(UpstreamBroken("upstream sent data outside a response"))
            return
        self.last_read = self._loop.time()
        self.answered = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserError:
            self._fail(UpstreamBroken("upstream sent an invalid response"))
            return
        if self.head_only and self.headers_done:
            # llhttp does not know the request was HEAD and would take the next response for this
            # one's body: the exchange ends with the head, and a fresh parser reads the next one.
            self._parser = httptools.HttpResponseParser(self)
            self.complete = True
            self._wake()

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # Nothing more can arrive: nothing is left to time out or parse. A pending timer would
        # keep the connection in memory for up to its read timeout, and the parser (whose
        # callbacks are this connection's methods) in a cycle only the garbage collector frees.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parser = None
        if self.busy and not self.complete:
            if self.headers_done and not self.length_known and not self.head_only:
                self.complete = True  # a close-delimited body ends with the connection (RFC 9112 §6.3)
                self.keep_alive = False
                self._wake()
            else:
                sent_nothing = not self.answered
                self._fail(UpstreamBroken("upstream closed the connection", sent_nothing=sent_nothing))
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)
        if not self.busy:
            self._on_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # -- httptools callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self.complete:
            self.keep_alive = False  # a second response to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.headers_done:
            return  # trailers (after a chunked body) are not passed on
        name = name.lower()
        if name == b"content-length" or name == b"transfer-encoding":
            self.length_known = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        parser = self._parser
        assert parser is not None  # this is the parser's own callback
        status = parser.get_status_code()
        if status < 200:
            # 1xx (100 Continue, 103 Early Hints): skipped; the final response follows.
            self.headers = []
            self.length_known = False
            return
        self.status = status
        self.headers_done = True
        self.keep_alive = parser.should_keep_alive()
        if status == 204 or status == 304:
            self.length_known = True  # no body, whatever the headers say (RFC 9112 §6.3)
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        if self.head_only:
            self.keep_alive = False  # a body after a HEAD response: do not trust this connection
            return
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered >= HIGH_WATER and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done or self.complete:
            return  # the end of a 1xx
        self.complete = True
        self._wake()
