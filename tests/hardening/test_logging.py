"""Defect 12: the log says each thing once, and a caller cannot flood it.

- An unexpected error in an admin endpoint was logged twice (our catch-all handler, then again
  by the server after Starlette re-raised it). Made here by corrupting a client's row in the
  real SQLite store, so reading it fails in a way nobody planned for.
- An unauthenticated request with `Upgrade: websocket` wrote two warnings every time.
- `gateway … | head` ended in a BrokenPipeError traceback.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.harness import Gateway
from tests.support.processes import clean_env, gateway_command

UPGRADE = (
    b"GET /whoami HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def _wait_for(gw: Gateway, text: str, start: int, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := gw.log()[start:]):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{log[-3000:]}"
        time.sleep(0.05)
    return log


def test_an_unexpected_error_is_logged_once(gateway: Gateway) -> None:
    admin = gateway.admin()
    client_id = admin.create_client()["clientId"]
    with sqlite3.connect(gateway.directory / "gateway.db") as db:
        db.execute("UPDATE clients SET scopes = '[not json' WHERE client_id = ?", (client_id,))
    start = len(gateway.log())
    try:
        response = admin.get(f"/v1/clients/{client_id}")
    finally:  # the suite's other tests share this store
        with sqlite3.connect(gateway.directory / "gateway.db") as db:
            db.execute("UPDATE clients SET scopes = '[]' WHERE client_id = ?", (client_id,))
    assert response.status_code == 500, response.text
    assert response.json()["error"] == "server_error"
    assert "not json" not in response.text  # nothing internal in the answer
    # The 500 is answered and logged by then; one more request proves the log has caught up.
    assert admin.get("/v1/roles").status_code == 200
    log = _wait_for(gateway, "unexpected error", start)
    time.sleep(0.3)  # a second copy, if any, is written right after the first
    log = gateway.log()[start:]
    assert log.count("Traceback") == 1, log
    assert "Exception in ASGI application" not in log, log


def test_upgrade_requests_do_not_flood_the_log(gateway: Gateway) -> None:
    start = len(gateway.log())
    for _ in range(5):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
            sock.sendall(UPGRADE)
            assert sock.recv(100).startswith(b"HTTP/1.1 401")
    # An ordinary request after them: anything they logged is in the log by now.
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 ")
    time.sleep(0.2)
    log = gateway.log()[start:]
    assert "upgrade" not in log.lower() and "websocket" not in log.lower(), log


def test_a_closed_pipe_ends_quietly(gateway: Gateway, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        gateway_command("clients", "list", "--config", str(gateway.config_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head` that has read what it wanted
    with proc.stderr:
        stderr = proc.stderr.read().decode()
    assert proc.wait(30) == 141, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
