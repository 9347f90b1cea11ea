"""Serving: both listeners in every worker process, one supervisor when there are several.

The supervisor binds the sockets once and starts workers with the `spawn` method (as uvicorn's
own multiprocess mode does), so every worker accepts on the same sockets. Each worker runs two
uvicorn servers (public and admin) in one event loop, with uvloop and httptools (never h11:
CVE-2025-43859), and handles the signals itself: SIGTERM/SIGINT stop accepting and let in-flight
requests finish (up to `shutdown_timeout`); SIGHUP reloads the policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Generator
from typing import Any

import uvicorn
import uvloop

from gateway.config import Config, Listen
from gateway.http1 import Listener
from gateway.logs import quiet_server_noise
from gateway.policy.loader import Policy

log = logging.getLogger("gateway")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield  # the worker installs one set of handlers for both listeners


def bind(listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen.host, listen.port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"gateway: cannot listen on {listen}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app: Any, config: Config) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="off",  # the worker starts and stops the Runtime around both servers
        loop="uvloop",
        http="httptools",
        ws="none",
        proxy_headers=False,  # trusted_proxies is ours; uvicorn's would trust 127.0.0.1 blindly
        server_header=False,
        date_header=False,
        # uvicorn's access log prints query strings, where callers sometimes put secrets; the
        # proxy writes its own access line (logger gateway.access) without them.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=config.shutdown_timeout,  # type: ignore[arg-type]  # a float works
    )


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )
    quiet_server_noise()
    if level != "debug":
        # Both listeners are uvicorn servers in one process, so each of its lifecycle lines
        # ("Started server process", "Shutting down") came twice; our own lines say it once.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)


async def serve_worker(config: Config, sockets: list[socket.socket], policy: Policy | None = None) -> None:
    from gateway.admin import admin_app, public_own_app
    from gateway.console import console_routes
    from gateway.proxy import ProxyApp
    from gateway.runtime import Runtime, open_identity

    runtime = Runtime(config, await asyncio.to_thread(open_identity, config), policy)
    await runtime.start()
    proxy = ProxyApp(runtime, public_own_app(runtime))
    tune_interpreter()
    console = console_routes(runtime) if config.console.enabled else []
    servers = [_Server(_uvicorn_config(admin_app(runtime, console), config))]
    sockets_of = [sockets[1]]
    if len(sockets) > 2:  # decisions.listen: the forward-auth endpoint without the admin API
        from gateway.decisions import DecisionApp

        servers.append(_Server(_uvicorn_config(DecisionApp(runtime), config)))
        sockets_of.append(sockets[2])
    # The public listener: our own HTTP/1.1 protocol (gateway.http1), or uvicorn's for comparison
    # in the benchmarks (GATEWAY_HTTP_SERVER=uvicorn; benchmarks/RESULTS.md has the figures).
    public: Listener | None = None
    granian: Any = None
    if os.environ.get("GATEWAY_HTTP_SERVER") == "uvicorn":
        servers.append(_Server(_uvicorn_config(proxy, config)))
        sockets_of.append(sockets[0])
    elif os.environ.get("GATEWAY_HTTP_SERVER") == "granian":
        granian = _granian(proxy)
    else:
        public = Listener(proxy, config)
        await public.start(sockets[0])
    stopping = asyncio.Event()

    def stop() -> None:
        runtime.ready = False
        if stopping.is_set():  # a second signal: stop now
            for server in servers:
                server.force_exit = True
            if public is not None:
                public.abort_all()
        stopping.set()
        for server in servers:
            server.should_exit = True
        if granian is not None:
            granian.stop()

    async def drain_public() -> None:
        if public is not None:
            await stopping.wait()
            # The listening socket closes in this process at once, so new connections are refused
            # rather than queued and reset; in-flight requests get up to shutdown_timeout.
            await public.close(config.shutdown_timeout, sockets[0])

    reloads: set[asyncio.Task[bool]] = set()  # keep references: the loop only holds weak ones

    def reload() -> None:
        task = asyncio.ensure_future(runtime.policy.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop)
    loop.add_signal_handler(signal.SIGINT, stop)
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await asyncio.gather(
            drain_public(),
            *([granian.serve()] if granian is not None else []),
            *(server.serve(sockets=[sock]) for server, sock in zip(servers, sockets_of, strict=True)),
        )
    finally:
        await runtime.stop()


def _granian(app: Any) -> Any:
    """granian's embedded ASGI server on the proxy app, for the benchmarks' server comparison only
    (GATEWAY_HTTP_SERVER=granian, listening on GATEWAY_GRANIAN_LISTEN, host:port): granian binds
    its own socket and is not a dependency of the gateway (scripts/bench installs it). The
    supervisor's public socket stays open and unanswered meanwhile, and a drain does not apply:
    not for production."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server.embed import Server

    host, _, port = os.environ["GATEWAY_GRANIAN_LISTEN"].rpartition(":")
    return Server(app, address=host, port=int(port), interface=Interfaces.ASGINL, log_level=LogLevels.warning)


def tune_interpreter() -> None:
    """Once a worker has started:

    - What was loaded (modules, policy, caches) stays, so it is frozen out of the collector's
      scans, and young collections are made rarer. A proxied request allocates ~100 containers,
      so the default threshold (700) ran a collection every few requests (issue 8: 5 % fewer
      instructions per request).
    - The GIL is handed over after 1 ms instead of 5. A busy event loop gives it up only when
      another thread has waited that long, and the change feed's poll (a thread, several GIL
      hand-overs per query) then took 0.2-0.7 s instead of a few ms: past the one-second
      freshness bound now and then, so a saturated worker refused valid credentials with 503.
      At 1 ms a poll takes ~8 ms under the same load; store reads on cache misses gain too.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)
    sys.setswitchinterval(0.001)


def _worker_main(config: Config, sockets: list[socket.socket], policy: Policy | None = None) -> None:
    configure_logging(config.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; it sends SIGTERM
    uvloop.run(serve_worker(config, sockets, policy))


def prepare_metrics_dir() -> str | None:
    """Point prometheus_client at a fresh multi-process directory, so that every worker reports
    into one view. Must run before anything imports prometheus_client (it picks its value class
    at import), so `gateway serve` calls it first. Returns the directory it created, if any."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return None
    if "prometheus_client" in sys.modules:
        raise RuntimeError("prometheus_client was imported before the metrics directory was set")
    created = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return created


def run(config: Config, policy: Policy | None = None) -> None:
    """`gateway serve`: blocks until stopped by a signal. `policy`, already loaded and checked,
    is reused by a single in-process worker (a large policy takes seconds to load)."""
    configure_logging(config.log_level)
    sockets = [bind(config.listen), bind(config.admin_listen)]
    if config.decisions.listen is not None:
        sockets.append(bind(config.decisions.listen))
    log.info(
        "gateway serving: proxy on http://%s, admin on http://%s%s, %d worker(s)",
        config.listen,
        config.admin_listen,
        f", decisions on http://{config.decisions.listen}" if config.decisions.listen else "",
        config.workers,
    )
    try:
        if config.workers == 1:
            _worker_main(config, sockets, policy)
        else:
            _supervise(config, sockets)
    finally:
        for sock in sockets:
            sock.close()


def _supervise(config: Config, sockets: list[socket.socket]) -> None:
    from prometheus_client import multiprocess

    from gateway.supervisor import Supervisor

    spawn = multiprocessing.get_context("spawn")

    def start_worker() -> Any:
        process = spawn.Process(target=_worker_main, args=(config, sockets), daemon=False)
        process.start()
        return process

    def reaped(process: Any) -> None:
        if process.pid is not None:
            multiprocess.mark_process_dead(process.pid)  # type: ignore[no-untyped-call]

    stopping = False
    supervisor: Supervisor | None = None

    def signal_all(sig: int) -> None:
        for w in supervisor.processes() if supervisor is not None else []:
            if w.is_alive() and w.pid:
                os.kill(w.pid, sig)

    def on_stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        signal_all(signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, lambda signum, frame: signal_all(signal.SIGHUP))
    supervisor = Supervisor(config.workers, start_worker, reaped)
    if stopping:  # a stop that came while they started
        signal_all(signal.SIGTERM)
    while not stopping:
        time.sleep(0.1)
        if not stopping:
            supervisor.tick()
    # Our copy of the proxy socket too: once every worker closed theirs, the kernel refuses new
    # connections instead of queueing them for nobody (and resetting them later).
    sockets[0].close()
    deadline = time.monotonic() + config.shutdown_timeout + 5
    for w in supervisor.processes():
        w.join(max(0.0, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if w.is_alive():
            w.kill()  # type: ignore[attr-defined]
        reaped(w)
