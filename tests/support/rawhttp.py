"""A deliberately dumb HTTP/1.1 client over a plain socket, for requests httpx would normalise:
raw request targets (`/a/%2e%2e/b`), duplicate headers, header names with `_` or `.`, exact
header case, and for seeing exactly how a response ended (complete or cut short)."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lower-cased, in arrival order
    body: bytes
    complete: bool  # the body ended where its framing said it would
    closed: bool = False  # the server closed the connection
    interim: list[int] = field(default_factory=list)  # 1xx statuses seen before the final one

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    def get(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def build(
    method: str,
    target: str | bytes,
    headers: list[tuple[str, str]] = (),
    body: bytes = b"",  # type: ignore[assignment]
    *,
    host: str = "127.0.0.1",
    close: bool = True,
) -> bytes:
    """A request, byte for byte: Host first (unless given), then `headers` as written."""
    target_bytes = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode("latin-1") + b" " + target_bytes + b" HTTP/1.1"]
    names = {n.lower() for n, _ in headers}
    if "host" not in names:
        lines.append(b"Host: " + host.encode())
    lines += [f"{n}: {v}".encode("latin-1") for n, v in headers]
    if close and "connection" not in names:
        lines.append(b"Connection: close")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class RawConnection:
    """One client connection to 127.0.0.1:port: write bytes whenever you like, read a response."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> bool:
        """Write `data`; False if the server had already closed or reset the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def response(self, *, head: bool = False, timeout: float | None = None) -> RawResponse:
        """Read one response (bounded by `timeout`). `head=True`: the response has no body."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        closed = False
        while True:
            parsed = _parse(self.buf, head, eof=False)
            if parsed is not None:
                return parsed
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete response within {limit}s; got {self.buf[:500]!r}")
            self.sock.settimeout(remaining)
            try:
                piece = self.sock.recv(256 * 1024)
            except ConnectionResetError:
                piece = b""
            if not piece:
                closed = True
                break
            self.buf += piece
        parsed = _parse(self.buf, head, eof=True)
        if parsed is None:
            raise ConnectionError(f"connection closed before a response head arrived: {self.buf[:500]!r}")
        parsed.closed = closed
        return parsed


def send(port: int, data: bytes, *, head: bool = False, timeout: float = 10.0) -> RawResponse:
    """Send `data` to 127.0.0.1:port on a new connection and read one response."""
    with RawConnection(port, timeout) as conn:
        conn.send(data)  # the server may answer and close before it read everything
        return conn.response(head=head)


def chunked(*pieces: bytes, end: bool = True) -> bytes:
    """`pieces` in chunked transfer coding (with the final 0-chunk when `end`)."""
    out = b"".join(b"%x\r\n" % len(p) + p + b"\r\n" for p in pieces if p)
    return out + (b"0\r\n\r\n" if end else b"")


def _parse(buf: bytes, head: bool, eof: bool) -> RawResponse | None:
    interim: list[int] = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = buf[:end].decode("latin-1").split("\r\n")
        _version, status_text, *reason = lines[0].split(" ", 2)
        status = int(status_text)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        rest = buf[end + 4 :]
        if 100 <= status < 200:
            interim.append(status)
            buf = rest
            continue
        break
    response = RawResponse(status, reason[0] if reason else "", headers, b"", False, interim=interim)
    if head or status in (204, 304):
        response.complete = True
        return response
    lengths = response.all("content-length")
    chunked = any("chunked" in v.lower() for v in response.all("transfer-encoding"))
    if chunked:
        body, done = _dechunk(rest)
        response.body, response.complete = body, done
        return response if done or eof else None
    if lengths:
        length = int(lengths[0])
        response.body = rest[:length]
        response.complete = len(rest) >= length
        return response if response.complete or eof else None
    response.body = rest  # framed by the end of the connection
    response.complete = eof
    return response if eof else None


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    out = bytearray()
    pos = 0
    while True:
        line_end = data.find(b"\r\n", pos)
        if line_end < 0:
            return bytes(out), False
        size = int(data[pos:line_end].split(b";")[0] or b"0", 16)
        start = line_end + 2
        if size == 0:
            return bytes(out), data.find(b"\r\n", start) >= 0
        if len(data) < start + size + 2:
            out += data[start : start + size]
            return bytes(out), False
        out += data[start : start + size]
        pos = start + size + 2
