"""A TCP relay on 127.0.0.1 that a test can cut: between a gateway replica and PostgreSQL, it
stands for the network (or the server) failing in the two ways a fault probe sees, without
touching the machine's PostgreSQL, which other tests share.

- `cut()`: packets silently dropped. Connections stay open and new ones are accepted, but no
  byte goes through either way: a caller waiting for an answer waits forever unless it has a
  timeout of its own (TCP keepalives do not help: the relay's kernel acknowledges them).
- `down()`: the server stopped. Open connections are reset and new ones reset at once.
- `restore()`: traffic flows again; connections from before are reset (their protocol state was
  lost with the dropped bytes), as a restarted server would do.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


def _reset(sock: socket.socket) -> None:
    # shutdown() first: a close() alone leaves a thread blocked in recv() on it, and the
    # connection open, until that recv returns.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port: int = self.listener.getsockname()[1]
        self.mode = "open"
        self._generation = 0  # bumped by restore(): relays of older generations stop
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()

    # --- control ---

    def cut(self) -> None:
        self.mode = "cut"

    def down(self) -> None:
        self.mode = "down"
        self._reset_all()

    def restore(self) -> None:
        self._reset_all()
        self.mode = "open"

    def close(self) -> None:
        self._closed = True
        self._thread.join(5)
        self.listener.close()
        self._reset_all()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- relaying ---

    def _reset_all(self) -> None:
        with self._lock:
            self._generation += 1
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _reset(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "down":
                _reset(client)
                continue
            with self._lock:
                self._sockets.append(client)
                generation = self._generation
            if self.mode == "cut":
                # Held open, never answered: what a caller sees behind a silent network.
                threading.Thread(target=self._pump, args=(client, None, generation), daemon=True).start()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets.append(server)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst, generation), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket | None, generation: int) -> None:
        while generation == self._generation:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                if dst is not None:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                return
            if dst is None or self.mode != "open":
                continue  # dropped
            try:
                dst.sendall(data)
            except OSError:
                return
