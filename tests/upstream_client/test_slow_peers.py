"""Slow and stuck peers cannot hold the gateway (issue 8 item 5): slowloris heads, idle
keep-alive connections, trickled bodies, the request line in the header limit, a reload during a
long streaming response, and new connections during a drain. Each test has a gateway of its own
with short timeouts (timeouts.* in config.example.yaml); the upstreams are conftest's."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import rawhttp
from tests.support.harness import Gateway, running_gateway
from tests.support.processes import Upstream, http_client
from tests.support.rawupstream import RawUpstream, Request, wait_until

POLICY = """\
upstreams:
  main:
    url: {main}
    timeout: {timeout}
    pool_size: 2
    pool_timeout: 1s
  raw:
    url: {raw}
    timeout: 5s
routes:
  - {{id: echo, match: "* /echo/{{rest*}}", upstream: main, auth: none}}
  - {{id: raw, match: "* /raw/{{rest*}}", upstream: raw, auth: none}}
"""
TIMEOUTS = {"header": "1s", "keepalive": "1s", "body_idle": "1s", "body_min_rate": "1KiB"}


def write_policy(path: Path, upstream: Upstream, raw: RawUpstream, timeout: str = "10s") -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(POLICY.format(main=upstream.url, raw=raw.url, timeout=timeout))
    tmp.replace(path)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: Upstream, raw: RawUpstream
) -> Iterator[Gateway]:
    path = tmp_path_factory.mktemp("policies") / "routes.yaml"
    write_policy(path, upstream, raw)
    with running_gateway(tmp_path_factory.mktemp("gateway"), [path], timeouts=TIMEOUTS) as gw:
        yield gw


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it said before."""
    sock.settimeout(seconds)
    received = b""
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            piece = sock.recv(65536)
            if not piece:
                return True, received
            received += piece
    except ConnectionResetError:
        return True, received
    except TimeoutError:
        return False, received
    return False, received


def test_slowloris_heads_are_cut_while_normal_traffic_flows(gateway: Gateway) -> None:
    attackers = []
    for _ in range(100):
        sock = socket.create_connection(("127.0.0.1", gateway.port))
        sock.sendall(b"GET /echo/x HTTP/1.1\r\nHost: x\r\n")  # and never the rest
        attackers.append(sock)
    started = time.monotonic()
    with http_client() as client:
        latencies = []
        while time.monotonic() - started < 1.5:
            t = time.monotonic()
            assert client.get(gateway.proxy_url + "/echo/ok").status_code == 200
            latencies.append(time.monotonic() - t)
    assert max(latencies) < 0.5, max(latencies)
    for sock in attackers:
        closed, said = closed_within(sock, 3)
        assert closed, "a slowloris connection outlived timeouts.header"
        assert said.startswith(b"HTTP/1.1 408 ")
        sock.close()


def test_connection_that_sends_nothing_is_closed(gateway: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:
        closed, said = closed_within(sock, 3)
    assert closed and said == b""


def test_idle_keep_alive_connection_is_closed(gateway: Gateway) -> None:
    with rawhttp.RawConnection(gateway.port) as conn:
        conn.send(rawhttp.build("GET", "/echo/once", close=False))
        answer = conn.response()
        assert answer.status == 200
        conn.buf = b""
        closed, said = closed_within(conn.sock, 3)
    assert closed
    assert said == b"", "an idle connection must be closed without an unasked answer"


@pytest.mark.parametrize(
    ("target_len", "header_len"),
    [(17 * 1024, 0), (9 * 1024, 8 * 1024)],
    ids=["long-url", "url-plus-headers"],
)
def test_request_line_counts_in_max_header_bytes(
    gateway: Gateway, upstream: Upstream, target_len: int, header_len: int
) -> None:
    target = "/echo/" + "a" * target_len
    headers = [("X-Filler", "b" * header_len)] if header_len else []
    response = rawhttp.send(gateway.port, rawhttp.build("GET", target, headers))
    assert response.status == 431
    assert response.json()["error"] == "request_too_large"
    assert not upstream.with_path_part("aaaaaaaaaa")


def trickle(port: int, path: str, every: float, stop: threading.Event) -> bytes:
    """A chunked upload of one byte every `every` seconds; returns what the gateway answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        answer = b""
        sock.settimeout(every)
        while not stop.is_set():
            try:
                sock.sendall(b"1\r\nx\r\n")
            except OSError:
                break
            try:
                piece = sock.recv(65536)
                if not piece:
                    break
                answer += piece
            except TimeoutError:
                continue
            except OSError:
                break
        return answer


def test_trickled_bodies_are_cut_and_free_the_pool(gateway: Gateway) -> None:
    """Four uploads of one byte every 0.3 s against a pool of two: those holding a pooled
    connection are answered 408 within a few seconds (under timeouts.body_min_rate), those that
    waited for one 504 after pool_timeout, and normal requests to that upstream still pass."""
    stop = threading.Event()
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(trickle(gateway.port, "/echo/upload", 0.3, stop)))
        for _ in range(4)
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.5)
        with http_client() as client:
            while any(t.is_alive() for t in threads) and time.monotonic() - started < 6:
                response = client.post(gateway.proxy_url + "/echo/normal", content=b"x" * 100)
                assert response.status_code == 200, response.text
                time.sleep(0.1)
    finally:
        for thread in threads:
            thread.join(8)
        stop.set()
    assert time.monotonic() - started < 8
    assert len(answers) == 4
    statuses = sorted(answer[9:12] for answer in answers)
    assert set(statuses) <= {b"408", b"504"}, answers
    assert statuses.count(b"408") >= 2


def test_reload_during_a_streaming_response_lets_it_finish(
    tmp_path: Path, upstream: Upstream, raw: RawUpstream
) -> None:
    pieces, piece = 20, b"p" * 65536

    def stream(request: Request, conn: socket.socket) -> bool:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {pieces * len(piece)}\r\n\r\n".encode())
        for _ in range(pieces):
            conn.sendall(piece)
            time.sleep(0.1)
        return True

    raw.scripts["/raw/stream"] = stream
    path = tmp_path / "policies" / "routes.yaml"
    path.parent.mkdir()
    write_policy(path, upstream, raw)
    with running_gateway(tmp_path / "gw", [path], timeouts=TIMEOUTS) as gw, http_client(timeout=20) as client:
        received = 0
        with client.stream("GET", gw.proxy_url + "/raw/stream") as response:
            for i, chunk in enumerate(response.iter_raw()):
                received += len(chunk)
                if i == 0:  # change every upstream's settings mid-stream
                    write_policy(path, upstream, raw, timeout="9s")
                    gw.wait_for_log("policy reloaded", timeout=5)
        assert received == pieces * len(piece)
        assert "in flight finish first" in gw.log()
        assert client.get(gw.proxy_url + "/echo/after").status_code == 200


def test_new_connections_during_a_drain_are_refused(
    tmp_path: Path, upstream: Upstream, raw: RawUpstream
) -> None:
    path = tmp_path / "policies" / "routes.yaml"
    path.parent.mkdir()
    write_policy(path, upstream, raw)
    with running_gateway(tmp_path / "gw", [path], shutdown_timeout="10s") as gw:
        result: list[int] = []

        def slow() -> None:
            with http_client(timeout=15) as client:
                result.append(client.get(gw.proxy_url + "/echo/slow?up_sleep=1.5").status_code)

        thread = threading.Thread(target=slow)
        thread.start()
        assert wait_until(lambda: bool(upstream.with_path_part("/echo/slow")), 5)
        gw.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", gw.port), timeout=2).close()
        thread.join(10)
        assert result == [200]
        assert gw.wait(15) == 0
