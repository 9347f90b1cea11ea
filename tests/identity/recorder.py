"""A small recording upstream for the identity tests: a plain ASGI app under uvicorn, run as its
own process (`python -m tests.identity.recorder`).

It binds an ephemeral port on 127.0.0.1 and prints `{"port": N}` as one JSON line on stdout.
Every request is recorded (method, raw path, query, headers) and answered 200 with a small JSON
body, except the control endpoints under `/__recorder/` (no gateway route leads there):

    GET  /__recorder/requests   every recorded request, oldest first (?mark=M: only those
                                carrying `X-Test-Mark: M`)
    POST /__recorder/reset      forget them
"""

from __future__ import annotations

import json
import socket
from typing import Any
from urllib.parse import parse_qs

import uvicorn

RECORDS: list[dict[str, Any]] = []
CONTROL = "/__recorder/"


async def _answer(send: Any, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    while True:  # drain the body
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            break
    path: str = scope["path"]
    if path.startswith(CONTROL):
        if path == CONTROL + "requests":
            wanted = parse_qs(scope["query_string"].decode("latin-1")).get("mark")
            if wanted:
                pair = ["x-test-mark", wanted[0]]
                await _answer(send, 200, [r for r in RECORDS if pair in r["headers"]])
            else:
                await _answer(send, 200, RECORDS)
        elif path == CONTROL + "reset" and scope["method"] == "POST":
            RECORDS.clear()
            await _answer(send, 200, {"ok": True})
        else:
            await _answer(send, 404, {"error": "no such control endpoint"})
        return
    RECORDS.append(
        {
            "method": scope["method"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        }
    )
    await _answer(send, 200, {"ok": True, "path": path})


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
