"""The caller's request body, read as the upstream takes it, within the limits.

A body that stops arriving, or arrives slower than `min_rate` once the first `idle` seconds have
passed, is refused with 408: a pooled upstream connection must not be held by a caller who
trickles a byte every few seconds (issue 8: ~100 such uploads per worker made every route on
that upstream answer 504). Both bounds are `timeouts.body_idle` and `timeouts.body_min_rate`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.errors import ClientGone, RequestTimeout, RequestTooLarge

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class RequestBody:
    __slots__ = (
        "_idle",
        "_limit",
        "_loop",
        "_min_rate",
        "_receive",
        "_started",
        "done",
        "length",
        "received",
    )

    def __init__(
        self,
        receive: Receive,
        length: int | None,
        limit: int,
        idle: float,
        min_rate: float,
    ) -> None:
        self._receive = receive
        self.length = length  # None: chunked, re-framed chunked upstream
        self._limit = limit
        self._idle = idle
        self._min_rate = min_rate
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        self.received = 0
        self.done = False

    async def read(self) -> bytes:
        """The next piece of the body (possibly b"" at its end); sets `done` with the last one."""
        now = self._loop.time()
        deadline = now + self._idle
        if self._min_rate > 0:
            # By the time t, at least min_rate × (t - start - idle) bytes must have arrived.
            deadline = min(deadline, self._started + self._idle + self.received / self._min_rate)
        try:
            async with asyncio.timeout_at(max(deadline, now)):
                message = await self._receive()
        except TimeoutError:
            raise RequestTimeout() from None
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self._limit:
            raise RequestTooLarge(f"request body is over {self._limit} bytes")
        if not message.get("more_body", False):
            self.done = True
        return chunk

    def frame(self, chunk: bytes, last: bool) -> bytes:
        """The bytes to send upstream for this piece: as is, or as an HTTP/1.1 chunk."""
        if self.length is not None:
            return chunk
        framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n" if chunk else b""
        return framed + b"0\r\n\r\n" if last else framed
