"""Per upstream and worker: a bounded pool of keep-alive connections (connection.py).

At most `pool_size` connections are open at once; a request that finds none free waits up to
`pool_timeout` (then 504). Idle connections are reused newest first (warm ones stay warm, cold
ones age out) and closed after IDLE_SECONDS, before a typical upstream's own keep-alive timeout
(uvicorn and Node close after 5 s) would race a request onto a connection it is closing.

A reload that drops or changes an upstream retires its pool: idle connections close at once,
in-flight exchanges finish on the connections they hold, and those close when they end.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque

from gateway.errors import BadGateway, GatewayTimeout
from gateway.metrics import UPSTREAM_DURATION
from gateway.pipeline.forward.connection import UpstreamConnection
from gateway.policy.model import Upstream

log = logging.getLogger("gateway.forward")

IDLE_SECONDS = 4.0


class Pool:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.limit = upstream.pool_size
        port = upstream.port
        default = 443 if upstream.scheme == "https" else 80
        host = upstream.host if ":" not in upstream.host else f"[{upstream.host}]"
        self.host_header = (host if port == default else f"{host}:{port}").encode("idna")
        self.duration = UPSTREAM_DURATION.labels(upstream.name)
        self._ssl = ssl.create_default_context() if upstream.scheme == "https" else None
        self._idle: list[UpstreamConnection] = []
        self._waiters: deque[asyncio.Future[UpstreamConnection | None]] = deque()
        self.open = 0  # connections counted against the limit: idle, busy or connecting
        self.retired = False
        self._loop: asyncio.AbstractEventLoop | None = None  # asyncio.get_running_loop() calls getpid()

    def idle_connection(self) -> UpstreamConnection | None:
        """A pooled connection, without waiting: the common case, taken without a coroutine."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        idle = self._idle
        while idle:
            conn = idle.pop()
            if not conn.closed and loop.time() - conn.idle_since < IDLE_SECONDS:
                return conn
            self._forget(conn)
        return None

    async def acquire(self) -> tuple[UpstreamConnection, bool]:
        """A connection for one exchange, and whether it was reused (only a reused one can have
        been closed by the upstream in the meantime)."""
        pooled = self.idle_connection()
        if pooled is not None:
            return pooled, True
        loop = self._loop if self._loop is not None else asyncio.get_running_loop()
        if self.open >= self.limit:
            handed = await self._wait_for_turn(loop)
            if handed is not None:
                return handed, True
            # else a slot came free and is counted for us
        else:
            self.open += 1
        try:
            return await self._connect(loop), False
        except BaseException:
            self.open -= 1
            self._wake_one()
            raise

    async def _wait_for_turn(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection | None:
        """Wait for a released connection (returned) or a free slot (None, `open` kept for us)."""
        waiter: asyncio.Future[UpstreamConnection | None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.upstream.pool_timeout):
                return await waiter
        except BaseException as exc:
            if not waiter.done():
                waiter.cancel()
                self._waiters.remove(waiter)
            elif not waiter.cancelled():
                # Handed a connection or a slot just as we timed out or were cancelled: pass it on.
                handed = waiter.result()
                if handed is not None:
                    self._idle.append(handed)
                    self._take_idle_or_slot()
                else:
                    self.open -= 1
                    self._wake_one()
            if isinstance(exc, TimeoutError):
                raise GatewayTimeout("no free upstream connection in time") from None
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> UpstreamConnection:
        upstream = self.upstream
        try:
            async with asyncio.timeout(upstream.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: UpstreamConnection(loop, self._lost),
                    upstream.host,
                    upstream.port,
                    ssl=self._ssl,
                    server_hostname=upstream.host if self._ssl is not None else None,
                )
        except TimeoutError:
            raise GatewayTimeout("upstream connect timed out") from None
        except (OSError, ssl.SSLError) as exc:
            log.warning("upstream %s unreachable: %s", upstream.name, exc.strerror or type(exc).__name__)
            raise BadGateway("upstream unreachable") from None
        return conn

    def release(self, conn: UpstreamConnection) -> None:
        """After an exchange: keep the connection when it is reusable, else close it."""
        if conn.finish() and not self.retired:
            self._idle.append(conn)
            self._take_idle_or_slot()
            return
        conn.close()
        self.open -= 1
        self._wake_one()

    def _take_idle_or_slot(self) -> None:
        """Hand the newest idle connection to the first waiter, if any waits."""
        while self._waiters and self._idle:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(self._idle.pop())

    def _wake_one(self) -> None:
        """A slot came free: the first waiter may connect."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.open += 1  # the slot is the waiter's now
                waiter.set_result(None)
                return

    def _lost(self, conn: UpstreamConnection) -> None:
        """The upstream closed an idle connection."""
        if conn in self._idle:
            self._idle.remove(conn)
            self._forget(conn)

    def _forget(self, conn: UpstreamConnection) -> None:
        conn.close()
        self.open -= 1
        self._wake_one()

    def retire(self) -> int:
        """Stop pooling: close the idle connections now; busy ones close when they end.
        Returns how many exchanges are still in flight."""
        self.retired = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self.open -= len(idle)
        return self.open
