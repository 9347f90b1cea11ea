"""A recording upstream: a plain ASGI app under uvicorn, run as its own process.

    python -m tests.support.upstream          (from the project folder)

It binds two ephemeral ports on 127.0.0.1 and prints them as one JSON line on stdout:
`{"port": DATA, "control_port": CONTROL}`. The gateway is pointed at DATA; only the tests talk
to CONTROL, so nothing the gateway forwards can ever reach the control endpoints:

    GET  /requests   every request DATA received, oldest first (JSON list of records);
                     ?mark=M: only those carrying `X-Test-Mark: M`
    POST /reset      forget them

A record is `{method, raw_path, query, headers: [[name, value], ...], body_bytes, body_sha256,
complete}`; it is stored as soon as the request arrives (so a request whose body
never finished still shows), and its body fields are filled in once the body has been read.

Behaviour is chosen with query parameters (the gateway forwards the query unchanged):

    up_early=1       answer at once, without reading the request body
    up_sleep=S       sleep S seconds after reading the body, before answering
    up_status=N      answer with status N
    up_download=N    answer with N bytes of the `tests.support.data` pattern (Content-Length,
                     or chunked with up_chunked=1)
    up_break=N       announce a longer body (Content-Length 4N, or chunked with up_chunked=1),
                     send N bytes, then drop the connection
    up_cookie=1      answer with two Set-Cookie headers
    up_hop=1         answer with hop-by-hop headers (and one named in Connection)
    up_rid=ID        answer with its own X-Request-Id: ID

Any other request is answered 200 with its own record as JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import sys
from typing import Any
from urllib.parse import parse_qs

import uvicorn

from tests.support.data import pattern

RECORDS: list[dict[str, Any]] = []
CONTROL_PORT = 0


async def _json(send: Any, status: int, payload: Any, extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _drain(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body"):
            return


async def control(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await _drain(receive)
    if scope["path"] == "/requests":
        wanted = parse_qs(scope["query_string"].decode("latin-1")).get("mark")
        pair = ["x-test-mark", wanted[0]] if wanted else None
        await _json(send, 200, [r for r in RECORDS if pair is None or pair in r["headers"]])
    elif scope["path"] == "/reset" and scope["method"] == "POST":
        RECORDS.clear()
        await _json(send, 200, {"ok": True})
    else:
        await _json(send, 404, {"error": "no such control endpoint"})


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
    if scope["server"][1] == CONTROL_PORT:
        await control(scope, receive, send)
        return

    query = scope["query_string"].decode("latin-1")
    record: dict[str, Any] = {
        "method": scope["method"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query": query,
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
        "body_bytes": None,
        "body_sha256": None,
        "complete": False,
    }
    RECORDS.append(record)
    params = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items() if k.startswith("up_")}

    if params.get("up_early") == "1":  # answer without reading the request body
        await _json(send, 200, {"early": True})
        return

    digest = hashlib.sha256()
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        received += len(body)
        digest.update(body)
        if not message.get("more_body"):
            break
    record["body_bytes"] = received
    record["body_sha256"] = digest.hexdigest()
    record["complete"] = True

    if "up_sleep" in params:
        await asyncio.sleep(float(params["up_sleep"]))
    status = int(params.get("up_status", "200"))
    chunked = params.get("up_chunked") == "1"

    if "up_download" in params:
        total = int(params["up_download"])
        headers = [(b"content-type", b"application/octet-stream")]
        if not chunked:
            headers.append((b"content-length", str(total).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for piece in pattern(total):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return

    if "up_break" in params:
        sent = int(params["up_break"])
        headers = [(b"content-type", b"application/octet-stream")]
        if not chunked:
            headers.append((b"content-length", str(4 * sent).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        for piece in pattern(sent):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await asyncio.sleep(0.05)
        raise RuntimeError("deliberately dropping the connection mid-body (up_break)")

    extra: list[tuple[bytes, bytes]] = []
    if params.get("up_cookie") == "1":
        extra += [(b"set-cookie", b"first=1; Path=/"), (b"set-cookie", b"second=2; Path=/")]
    if params.get("up_hop") == "1":
        extra += [
            (b"connection", b"X-Resp-Hop"),
            (b"keep-alive", b"timeout=30"),
            (b"proxy-authenticate", b"Basic realm=upstream"),
            (b"trailer", b"X-Checksum"),
            (b"x-resp-hop", b"must-not-cross"),
            (b"x-resp-keep", b"crosses"),
        ]
    if "up_rid" in params:
        extra.append((b"x-request-id", params["up_rid"].encode("latin-1")))
    await _json(send, status, record, extra)


def _bind() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def main() -> None:
    global CONTROL_PORT
    data, ctl = _bind(), _bind()
    CONTROL_PORT = ctl.getsockname()[1]
    config = uvicorn.Config(
        app,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_keep_alive=300,  # longer than the gateway's pool keeps idle connections
    )
    server = uvicorn.Server(config)
    print(json.dumps({"port": data.getsockname()[1], "control_port": CONTROL_PORT}), flush=True)
    server.run(sockets=[data, ctl])
    sys.exit(0)


if __name__ == "__main__":
    main()
