"""Both ends of the proxy over real loopback sockets, in this process: the public listener's
server (gateway.http1) and the upstream client (gateway.pipeline.forward). A closed connection is
freed at once by reference counting, however it ended, so many short connections cannot pile up
in memory: a pending timer held each one for up to its timeout (timeouts.header, an upstream's
read timeout), and the parser's callbacks made a cycle that only the garbage collector frees."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from gateway.config import load_config
from gateway.http1 import HttpProtocol, Listener
from gateway.pipeline.forward.connection import UpstreamConnection
from gateway.pipeline.forward.pool import Pool
from gateway.policy.model import Upstream

EXAMPLE = Path(__file__).parents[2] / "config.example.yaml"


class _Recording(set[HttpProtocol]):
    """Listener.connections, keeping a weak reference to every connection it ever held."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[weakref.ref[HttpProtocol]] = []

    def add(self, conn: HttpProtocol) -> None:
        self.seen.append(weakref.ref(conn))
        super().add(conn)


async def _app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["method"] == "POST":
        while (await receive())["type"] != "http.disconnect":
            pass  # waits for a body that never comes: the caller goes away
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


async def _closed_connections_are_freed() -> tuple[int, int]:
    listener = Listener(_app, load_config(EXAMPLE, environ={}))
    recording = _Recording()
    listener.connections = recording
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await listener.start(sock)

    async def one(request: bytes, answer: bool) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        if answer:
            assert (await reader.readuntil(b"ok")).startswith(b"HTTP/1.1 200")
        writer.close()
        await writer.wait_closed()

    get = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    for _ in range(20):
        await one(get, answer=True)  # answered, then closed by the caller
        await one(get * 3, answer=True)  # pipelined: closed before the last two were answered
        await one(b"GET /a HTTP/1.1\r\nHo", answer=False)  # closed inside the head
        await one(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nabc", answer=False)  # inside the body
        await one(b"", answer=False)  # connected, sent nothing
    deadline = time.monotonic() + 5
    while recording and time.monotonic() < deadline:
        await asyncio.sleep(0.02)  # the server sees each close on its next turns
    for _ in range(20):  # and the app's tasks and callbacks finish on theirs
        if not any(ref() is not None for ref in recording.seen):
            break
        await asyncio.sleep(0.05)
    alive = sum(ref() is not None for ref in recording.seen)
    await listener.close(1.0)
    return len(recording.seen), alive


async def _closed_upstream_connections_are_freed() -> tuple[int, int]:
    async def answer_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")  # reusable...
        await writer.drain()
        writer.close()  # ...but the upstream closes it once it is idle in the pool

    async def close_delimited(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nok")  # the body ends with the connection
        writer.close()

    refs: list[weakref.ref[UpstreamConnection]] = []
    for handler in (answer_then_close, close_delimited):
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        pool = Pool(Upstream("memory", "http", "127.0.0.1", port, ""))
        for _ in range(10):
            conn, _ = await pool.acquire()
            refs.append(weakref.ref(conn))
            conn.start(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n", False, 30.0)
            await conn.read_head()
            body = b""
            while chunk := await conn.read_body():
                body += chunk
            assert (conn.status, body) == (200, b"ok")
            pool.release(conn)
            deadline = time.monotonic() + 5
            while not conn.closed and time.monotonic() < deadline:
                await asyncio.sleep(0.01)  # the upstream's close arrives
            assert conn.closed
            del conn
        server.close()
        await server.wait_closed()
    for _ in range(40):
        if not any(ref() is not None for ref in refs):
            break
        await asyncio.sleep(0.05)
    return len(refs), sum(ref() is not None for ref in refs)


def _without_the_collector(run: Callable[[], Awaitable[tuple[int, int]]]) -> tuple[int, int]:
    gc.collect()
    gc.disable()  # what is freed here is freed by reference counting alone
    try:
        return uvloop.run(run())
    finally:
        gc.enable()


def test_closed_client_connections_are_freed_at_once() -> None:
    seen, alive = _without_the_collector(_closed_connections_are_freed)
    assert seen == 100
    assert alive == 0, f"{alive} of {seen} closed connections are still in memory"


def test_closed_upstream_connections_are_freed_at_once() -> None:
    seen, alive = _without_the_collector(_closed_upstream_connections_are_freed)
    assert seen == 20
    assert alive == 0, f"{alive} of {seen} closed upstream connections are still in memory"
