"""An upstream that misbehaves on purpose: a plain socket server in a thread on 127.0.0.1 whose
answers are scripted per request path, byte for byte (chunk extensions, trailers, 1xx, bodies
cut short, answers that never come, connections closed while idle).

It records every request it parsed, with the connection it came on, so a test can tell whether
the gateway reused a connection, sent one request or two (smuggling), and what bytes arrived.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Request:
    connection: int  # 1, 2, ... in the order the upstream accepted them
    method: str
    target: str
    headers: list[tuple[str, str]]  # names lower-cased
    body: bytes
    head: bytes  # the raw request head, as it arrived

    def get(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n == name), None)


# A script gets the request and the socket; it writes whatever it likes. It returns True to
# keep the connection open for the next request, False to close it.
Script = Callable[[Request, socket.socket], bool]


def respond(status: int, body: bytes = b"", headers: list[tuple[str, str]] | None = None) -> bytes:
    """A well-formed response with Content-Length (unless the headers frame it otherwise)."""
    given = headers or []
    lines = [f"HTTP/1.1 {status} X"] + [f"{n}: {v}" for n, v in given]
    names = {n.lower() for n, _ in given}
    if "content-length" not in names and "transfer-encoding" not in names and status not in (204, 304):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class RawUpstream:
    scripts: dict[str, Script] = field(default_factory=dict)  # by path (without the query)
    requests: list[Request] = field(default_factory=list)
    accepted: int = 0
    closed: int = 0  # connections this upstream has closed (its FIN sent)

    def __post_init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RawUpstream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            for conn in self._open:
                with contextlib.suppress(OSError):
                    conn.close()

    def for_path(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.target.split("?")[0] == path]

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                number = self.accepted
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buf = b""
        try:
            while not self._stop.is_set():
                request, buf = _read_request(conn, buf, number)
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                script = self.scripts.get(request.target.split("?")[0])
                if script is None:
                    conn.sendall(respond(404, b"no script"))
                elif not script(request, conn):
                    return
        except OSError:
            return
        finally:
            conn.close()
            with self._lock:
                self.closed += 1


def _read_request(conn: socket.socket, buf: bytes, number: int) -> tuple[Request | None, bytes]:
    while b"\r\n\r\n" not in buf:
        piece = conn.recv(65536)
        if not piece:
            return None, buf
        buf += piece
    end = buf.index(b"\r\n\r\n")
    head, buf = buf[:end], buf[end + 4 :]
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    names = dict(headers)
    body = b""
    if "chunked" in names.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in buf:
                buf += _recv(conn)
            line, buf = buf.split(b"\r\n", 1)
            size = int(line.split(b";")[0], 16)
            if size == 0:
                while b"\r\n" not in buf:
                    buf += _recv(conn)
                buf = buf.split(b"\r\n", 1)[1]  # no trailers from the gateway
                break
            while len(buf) < size + 2:
                buf += _recv(conn)
            body, buf = body + buf[:size], buf[size + 2 :]
    elif "content-length" in names:
        length = int(names["content-length"])
        while len(buf) < length:
            buf += _recv(conn)
        body, buf = buf[:length], buf[length:]
    return Request(number, method, target, headers, body, head), buf


def _recv(conn: socket.socket) -> bytes:
    piece = conn.recv(65536)
    if not piece:
        raise OSError("closed mid-request")
    return piece


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return check()
