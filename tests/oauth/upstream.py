"""The recording upstream of the OAuth tests: a plain ASGI app under uvicorn, run as its own
process (`python -m tests.oauth.upstream`).

It binds an ephemeral port on 127.0.0.1 and prints `{"port": N}` as one JSON line on stdout.
Every request is recorded (method, path, query, headers) and answered 200 with a small JSON body,
except the control endpoints under `/__recorder/`, which no gateway route leads to:

    GET  /__recorder/requests?mark=M   the recorded requests carrying `X-Test-Mark: M`
                                       (every one without `mark`), oldest first
"""

from __future__ import annotations

import json
import socket
import sys
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
        wanted = parse_qs(scope["query_string"].decode("latin-1")).get("mark")
        found = RECORDS
        if wanted:
            found = [r for r in RECORDS if ["x-test-mark", wanted[0]] in r["headers"]]
        await _answer(send, 200, found)
        return
    RECORDS.append(
        {
            "method": scope["method"],
            "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[n.decode("latin-1").lower(), v.decode("latin-1")] for n, v in scope["headers"]],
        }
    )
    await _answer(send, 200, {"ok": True, "path": path})


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
    sys.exit(0)
