"""Redis for the tests: the machine's shared server at 127.0.0.1:6379 (`.ci/run` starts it), and
private servers on ephemeral ports for tests that stop and restart one (never the shared one:
other suites and other people use it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

import pytest

from tests.support.processes import free_port, stop_process

SHARED_URL = "redis://127.0.0.1:6379/0"


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis() -> str:
    """The shared Redis URL; skips without one, fails where CI requires it."""
    if not _ping(6379):
        why = "no Redis at 127.0.0.1:6379 (.ci/run starts one)"
        if os.environ.get("GATEWAY_TEST_REQUIRE_REDIS"):
            pytest.fail(f"Redis is required here: {why}")
        pytest.skip(why)
    return SHARED_URL


def key_prefix() -> str:
    """A prefix of its own for one test's keys in a shared Redis."""
    return f"gwtest:{uuid.uuid4().hex[:12]}:"


class PrivateRedis:
    """A redis-server of the test's own on an ephemeral port, without persistence; `stop()` and
    `start()` again on the same port simulate an outage."""

    def __init__(self, directory: Path) -> None:
        if shutil.which("redis-server") is None:
            if os.environ.get("GATEWAY_TEST_REQUIRE_REDIS"):
                pytest.fail("redis-server is required here (scripts/install installs it)")
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        try:
            self.proc = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + 10
        while not _ping(self.port):
            assert self.proc.poll() is None, (self.directory / "redis.log").read_text()
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> PrivateRedis:
        self.start()
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        with contextlib.suppress(Exception):
            self.stop()
