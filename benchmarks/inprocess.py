"""The Python cost of one proxied request, without sockets: `python -m benchmarks.inprocess`.

wrk against the real gateway measures everything at once (syscalls, the loopback's TCP, the
peers' wake-ups, the cache misses they cause) on a machine whose speed moves by ±30 % between
minutes. This harness measures only the gateway's own Python: the public listener's protocol
(gateway.http1) and the whole pipeline (gateway.proxy: paths, route table, decide, mutate,
forward, metrics) run in one process against in-memory transports. The caller's side feeds
requests on 64 connections as answers come back; the upstream's side answers each request head
with a fixed response on the next loop turn, as a real socket would. It prints CPU µs per
request (min, lower quartile and median over the rounds: the min is the least disturbed), so
two revisions can be compared within minutes:

    python -m benchmarks.inprocess                       # the checkout's gateway
    BENCH_GATEWAY_SRC=DIR python -m benchmarks.inprocess # another revision (a worktree)
    python -m benchmarks.inprocess --mode server         # gateway.http1 with a trivial app

Under `valgrind --tool=callgrind` the instruction count per request is repeatable to a few
hundred instructions whatever else the machine does (difference of two request counts, so the
start-up cancels out); benchmarks/RESULTS.md has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __name__ == "__main__" and os.environ.get("BENCH_GATEWAY_SRC"):
    sys.path.insert(0, str(Path(os.environ["BENCH_GATEWAY_SRC"]).resolve()))

CONNECTIONS = 64
BODY = b'{"ok":true,"service":"bench-upstream","items":[1,2,3]}\n'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 12:00:00 GMT\r\n"
    b"Content-Type: application/json\r\nContent-Length: %d\r\nConnection: keep-alive\r\n\r\n" % len(BODY)
) + BODY


def write_config(folder: Path) -> Path:
    """A gateway with one public route to an upstream that is never dialled (see FakeUpstream)."""
    (folder / "policies").mkdir()
    (folder / "policies" / "bench.yaml").write_text(
        "upstreams:\n  fast: {url: 'http://127.0.0.1:9', pool_size: 256}\n"
        "routes:\n  - {id: bench-public, match: 'GET /bench/public', upstream: fast, auth: none}\n"
        "  - {id: bench-protected, match: 'GET /bench/users/{userId}/documents/{docId}', upstream: fast,\n"
        "     permission: 'documents:read', resource: '/users/{userId}/documents/{docId}'}\n"
    )
    config = folder / "gateway.yaml"
    config.write_text(
        f"public_url: http://127.0.0.1:8080\nlisten: 127.0.0.1:8080\n"
        f"admin: {{listen: '127.0.0.1:8081', public_url: 'http://127.0.0.1:8081'}}\nstore: sqlite:///{folder}/gateway.db\n"
        f"account_id: bench\nmaster_key_file: {folder}/master.key\npolicies: [{folder}/policies]\n"
        "reload: {interval: 0}\nlog_level: warning\naccess_log: false\n"
    )
    cli(config, "init")
    return config


def cli(config: Path, *args: str) -> Any:
    """`gateway ARGS --config CONFIG --json` of the revision under test, its output parsed."""
    out = subprocess.run([sys.executable, "-m", "gateway", *args, "--config", str(config), "--json"], check=True,
                         capture_output=True, cwd=config.parent,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return json.loads(out.stdout or b"null")


def access_key(config: Path) -> str:
    """A client granted documents:read on /users (as benchmarks.scenarios.bench_client), its key."""
    client = cli(config, "clients", "create", "--name", "bench", "--scope", "documents.read", "--with-key")
    cli(config, "roles", "put", "bench-reader", "--permission", "documents:read")
    cli(config, "records", "put", "--name", "bench", "--user", client["clientId"], "--role", "bench-reader",
        "--resource", "/users")
    key: str = client["accessKey"]
    return key


class FakeUpstream:
    """The upstream connection's transport: each request head is answered on the next loop turn."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: Any) -> None:
        self.loop, self.conn = loop, conn

    def write(self, data: bytes) -> None:
        self.loop.call_soon(self.conn.data_received, RESPONSE)

    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: return False
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: return default


class Caller:
    """One caller connection's transport: the next request goes out when an answer comes back."""

    def __init__(self, run: Run, protocol: Any) -> None:
        self.run, self.protocol = run, protocol

    def write(self, data: bytes) -> None:
        self.run.answered(data, self.protocol)

    def close(self) -> None: ...
    def abort(self) -> None: ...
    def is_closing(self) -> bool: return False
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


class Run:
    def __init__(self, loop: asyncio.AbstractEventLoop, requests: int, request: bytes) -> None:
        self.loop, self.requests, self.request = loop, requests, request
        self.sent = self.done = 0
        self.statuses: dict[bytes, int] = {}
        self.finished = loop.create_future()

    def send(self, protocol: Any) -> None:
        self.sent += 1
        protocol.data_received(self.request)

    def answered(self, data: bytes, protocol: Any) -> None:
        self.done += 1
        status = data[9:12]
        if status != b"200" and not getattr(self, "shown", False):
            self.shown = True
            print(data[:600])
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if self.sent < self.requests:
            self.loop.call_soon(self.send, protocol)
        elif self.done >= self.requests and not self.finished.done():
            self.finished.set_result(None)


async def measure(config_path: Path, mode: str, request: bytes, requests: int, rounds: int) -> list[float]:
    from gateway.admin import public_own_app
    from gateway.config import load_config
    from gateway.http1 import HttpProtocol, Listener
    from gateway.pipeline.forward import pool as pools
    from gateway.pipeline.forward.connection import UpstreamConnection
    from gateway.proxy import ProxyApp
    from gateway.runtime import Runtime, open_identity

    async def connect(self: Any, loop: asyncio.AbstractEventLoop) -> Any:
        conn = UpstreamConnection(loop, self._lost)
        conn.connection_made(FakeUpstream(loop, conn))
        return conn

    pools.Pool._connect = connect  # type: ignore[method-assign]
    config = load_config(config_path)
    runtime = Runtime(config, await asyncio.to_thread(open_identity, config), None)
    await runtime.start()
    app: Any = ProxyApp(runtime, public_own_app(runtime))
    import gateway.server

    tune = getattr(gateway.server, "tune_interpreter", getattr(gateway.server, "tune_collector", None))
    if tune is not None:  # absent from revisions before it
        tune()  # as a worker does
    if mode == "server":
        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
    listener = Listener(app, config)
    loop = asyncio.get_running_loop()
    results = []
    for _ in range(rounds + 1):  # the first round warms the caches and the pool
        run = Run(loop, requests, request)
        protocols = [HttpProtocol(listener, loop) for _ in range(CONNECTIONS)]
        for protocol in protocols:
            protocol.connection_made(Caller(run, protocol))
        started = time.process_time()
        for protocol in protocols:
            run.send(protocol)
        await run.finished
        results.append((time.process_time() - started) / requests * 1e6)
        for protocol in protocols:
            protocol.connection_lost(None)
        if set(run.statuses) != {b"200"}:
            raise SystemExit(f"unexpected answers: {run.statuses}")
    await runtime.stop()
    return sorted(results[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=["proxy", "server"], default="proxy")
    parser.add_argument("--route", choices=["public", "access_key"], default="public",
                        help="the public route, or the protected one with a static access key (warm caches)")
    parser.add_argument("--requests", type=int, default=20_000, help="per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--valgrind", action="store_true",
                        help="raise the gateway's one-second bounds (change-feed freshness, store reads) "
                             "to 60 s: under valgrind everything runs ~50x slower")
    parser.add_argument("--multiprocess-metrics", action="store_true",
                        help="metrics in files, as with several workers (default: in memory, as with one)")
    args = parser.parse_args()
    import uvloop

    if args.valgrind:
        import gateway.identity.directory

        gateway.identity.directory.FRESHNESS_BOUND = gateway.identity.directory.READ_TIMEOUT = 60.0

    with tempfile.TemporaryDirectory(prefix="gateway-inprocess-") as tmp:
        if args.multiprocess_metrics:  # as `gateway serve` runs several workers
            (Path(tmp) / "metrics").mkdir()
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(Path(tmp) / "metrics")
        config = write_config(Path(tmp))
        head = b"GET /bench/public HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\n"
        if args.route == "access_key":
            head = (b"GET /bench/users/1/documents/2 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: bench\r\n"
                    b"Authorization: Bearer %s\r\n" % access_key(config).encode())
        results = uvloop.run(measure(config, args.mode, head + b"\r\n", args.requests, args.rounds))
    quarter, half = results[len(results) // 4], results[len(results) // 2]
    print(f"{args.mode} {args.route}: {args.requests:,} requests × {args.rounds} rounds, CPU µs per request: "
          f"min {results[0]:.1f}  q1 {quarter:.1f}  median {half:.1f}")


if __name__ == "__main__":
    main()
