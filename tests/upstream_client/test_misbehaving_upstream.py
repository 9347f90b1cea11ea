"""The upstream client against an upstream that misbehaves on purpose (issue 8, "How it is
checked"): every response is written byte for byte by a raw socket server, and what the gateway
did with its connections is read from what that server saw."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support import rawhttp
from tests.support.harness import Gateway
from tests.support.processes import http_client, status_kib
from tests.support.rawupstream import RawUpstream, Request, respond, wait_until

MiB = 1024 * 1024


def route(raw: RawUpstream, script: object, prefix: str = "/raw") -> str:
    """A fresh path on the raw upstream answered by `script` (under /one: one pooled connection)."""
    path = f"{prefix}/{uuid.uuid4().hex}"
    raw.scripts[path] = script  # type: ignore[assignment]
    return path


def answer(data: bytes, keep: bool = True) -> object:
    def script(request: Request, conn: socket.socket) -> bool:
        conn.sendall(data)
        return keep

    return script


def test_chunked_with_extensions_and_trailers_arrives_whole(gateway: Gateway, raw: RawUpstream) -> None:
    data = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n"
        b"5;name=value\r\nhello\r\n6;another\r\n world\r\n0\r\nX-Digest: abc\r\n\r\n"
    )
    path = route(raw, answer(data))
    with http_client() as client:
        response = client.get(gateway.proxy_url + path)
        again = client.get(gateway.proxy_url + path)
    assert response.status_code == 200
    assert response.content == b"hello world"
    assert "x-digest" not in response.headers  # trailers are not passed on
    assert again.content == b"hello world"
    first, second = raw.for_path(path)
    assert first.connection == second.connection  # a complete chunked response: reused


def test_response_cut_mid_body_is_truncated_and_its_connection_dropped(
    gateway: Gateway, raw: RawUpstream
) -> None:
    cut = route(raw, answer(respond(200, b"x" * 1000, [("Content-Length", "5000")]), keep=False))
    fine = route(raw, answer(respond(200, b"fine")))
    broken = rawhttp.send(gateway.port, rawhttp.build("GET", cut))
    assert broken.status == 200
    assert not broken.complete
    assert broken.closed
    assert len(broken.body) == 1000
    response = rawhttp.send(gateway.port, rawhttp.build("GET", fine))
    assert response.body == b"fine"
    assert raw.for_path(fine)[0].connection != raw.for_path(cut)[0].connection


def test_close_delimited_response_arrives_whole(gateway: Gateway, raw: RawUpstream) -> None:
    body = b"until the end " * 1000
    path = route(raw, answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + body, keep=False))
    with http_client() as client:
        response = client.get(gateway.proxy_url + path)
    assert response.status_code == 200
    assert response.content == body


def test_upstream_that_never_answers_is_504_and_not_reused(gateway: Gateway, raw: RawUpstream) -> None:
    silent = route(raw, lambda request, conn: (time.sleep(3), False)[1])
    fine = route(raw, answer(respond(200, b"fine")))
    started = time.monotonic()
    with http_client() as client:
        response = client.get(gateway.proxy_url + silent)
        assert time.monotonic() - started < 2.5  # the upstream's `timeout: 1s`
        assert response.status_code == 504
        assert response.json()["error"] == "gateway_timeout"
        assert client.get(gateway.proxy_url + fine).content == b"fine"
    assert raw.for_path(fine)[0].connection != raw.for_path(silent)[0].connection
    assert len(raw.for_path(silent)) == 1  # a timeout is not retried


def test_invalid_response_is_502(gateway: Gateway, raw: RawUpstream) -> None:
    path = route(raw, answer(b"HTTP/1.1 2x0 Nope\r\n\r\n", keep=False))
    with http_client() as client:
        response = client.get(gateway.proxy_url + path)
    assert response.status_code == 502
    assert response.json()["error"] == "bad_gateway"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_pooled_connection_closed_by_the_upstream(gateway: Gateway, raw: RawUpstream, method: str) -> None:
    """The upstream answers once keep-alive, then drops the connection when the next request
    arrives on it (its idle timeout racing our reuse). GET is retried on a new connection; POST
    is not (the upstream may have acted on it), so it is 502."""
    seen: list[int] = []

    def script(request: Request, conn: socket.socket) -> bool:
        if request.connection in seen:
            return False  # close without answering
        seen.append(request.connection)
        conn.sendall(respond(200, b"ok"))
        return True

    path = route(raw, script, "/one")
    with http_client() as client:
        assert client.request(method, gateway.proxy_url + path).status_code == 200
        response = client.request(method, gateway.proxy_url + path)  # on the same connection
    if method == "GET":
        assert response.status_code == 200
        assert response.content == b"ok"
    else:
        assert response.status_code == 502


def test_idle_connections_closed_by_the_upstream_are_not_used(gateway: Gateway, raw: RawUpstream) -> None:
    path = route(raw, answer(respond(200, b"bye"), keep=False))  # keep-alive announced, then closed
    closed = raw.closed
    with http_client() as client:
        for n in range(5):
            response = client.post(gateway.proxy_url + path, content=b"not retried")
            assert response.status_code == 200
            assert response.content == b"bye"
            # The next request must come after the upstream's close, not race it (that race is
            # what the idempotent retry is for, and a POST is not retried).
            assert wait_until(lambda n=n: raw.closed > closed + n)


def test_head_response_with_a_length_and_no_body(gateway: Gateway, raw: RawUpstream) -> None:
    def script(request: Request, conn: socket.socket) -> bool:
        if request.method == "HEAD":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        else:
            conn.sendall(respond(200, b"after head"))
        return True

    path = route(raw, script)
    head = rawhttp.send(gateway.port, rawhttp.build("HEAD", path), head=True)
    assert head.status == 200
    assert head.get("content-length") == "1000"
    with http_client() as client:
        assert client.get(gateway.proxy_url + path).content == b"after head"
    requests = raw.for_path(path)
    assert [r.method for r in requests] == ["HEAD", "GET"]
    assert requests[0].connection == requests[1].connection  # the parser was not confused


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(gateway: Gateway, raw: RawUpstream, status: int) -> None:
    path = route(raw, answer(f"HTTP/1.1 {status} X\r\nETag: 1\r\n\r\n".encode()))
    with http_client() as client:
        first = client.get(gateway.proxy_url + path)
        second = client.get(gateway.proxy_url + path)
    assert first.status_code == second.status_code == status
    assert first.content == b""
    requests = raw.for_path(path)
    assert requests[0].connection == requests[1].connection


def test_interim_responses_are_skipped(gateway: Gateway, raw: RawUpstream) -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" + respond(201, b"made")
    )
    path = route(raw, answer(data))
    response = rawhttp.send(gateway.port, rawhttp.build("POST", path, body=b"payload"))
    assert response.status == 201
    assert response.body == b"made"
    assert raw.for_path(path)[0].body == b"payload"


def test_bytes_after_a_response_drop_the_connection(gateway: Gateway, raw: RawUpstream) -> None:
    extra = route(raw, answer(respond(200, b"one") + respond(200, b"unasked")))
    fine = route(raw, answer(respond(200, b"fine")))
    with http_client() as client:
        assert client.get(gateway.proxy_url + extra).content == b"one"
        for _ in range(6):  # whichever pooled connection it takes, never the polluted one
            assert client.get(gateway.proxy_url + fine).content == b"fine"
    polluted = raw.for_path(extra)[0].connection
    assert all(r.connection != polluted for r in raw.for_path(fine))


def test_pipelined_requests_answered_in_order(gateway: Gateway, raw: RawUpstream) -> None:
    paths = [route(raw, answer(respond(200, f"answer {i}".encode()))) for i in range(3)]
    data = b"".join(rawhttp.build("GET", p, close=(i == 2)) for i, p in enumerate(paths))
    received = b""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(data)  # three requests in one write
        while piece := sock.recv(65536):
            received += piece
    assert received.count(b"HTTP/1.1 200 ") == 3
    assert received.index(b"answer 0") < received.index(b"answer 1") < received.index(b"answer 2")


def test_concurrent_requests_share_a_bounded_pool(gateway: Gateway, raw: RawUpstream) -> None:
    def slow(request: Request, conn: socket.socket) -> bool:
        time.sleep(0.05)
        conn.sendall(respond(200, request.target.encode()))
        return True

    path = route(raw, slow)
    before = raw.accepted
    with ThreadPoolExecutor(16) as pool, http_client() as client:
        targets = [f"{path}?n={i}" for i in range(48)]
        responses = list(pool.map(lambda t: client.get(gateway.proxy_url + t), targets))
    assert [r.content.decode() for r in responses] == targets  # each got its own answer
    assert raw.accepted - before <= 4  # pool_size: 4


def test_slow_reader_of_a_large_response_keeps_memory_bounded(gateway: Gateway, raw: RawUpstream) -> None:
    size = 256 * MiB
    block = b"z" * MiB

    def big(request: Request, conn: socket.socket) -> bool:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        try:
            for _ in range(size // MiB):
                conn.sendall(block)  # blocks as soon as the gateway stops reading
        except OSError:
            pass
        return False

    path = route(raw, big)
    baseline = status_kib(gateway.pid, "VmRSS") * 1024
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(rawhttp.build("GET", path))
        received = 0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # read 16 KiB every 10 ms: ~1.6 MB/s
            piece = sock.recv(16 * 1024)
            assert piece
            received += len(piece)
            time.sleep(0.01)
        grown = status_kib(gateway.pid, "VmRSS") * 1024 - baseline
    assert received < 32 * MiB
    assert grown < 50 * MiB, f"gateway RSS grew by {grown / MiB:.0f} MiB for a slow reader"


@pytest.mark.parametrize(
    "smuggle",
    [
        # CL.TE: a front end that trusts Content-Length would pass the rest as a second request
        b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET {path}?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        # TE.CL: the other way round
        b"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        b"2c\r\nGET {path}?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n\r\n0\r\n\r\n",
        # two different Content-Lengths
        b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n"
        b"GET {path}?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        # an obfuscated Transfer-Encoding
        b"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: xchunked\r\n\r\n"
        b"GET {path}?smuggled=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["CL.TE", "TE.CL", "duplicate-CL", "TE-obfuscated"],
)
def test_smuggling_never_reaches_the_upstream_as_two_requests(
    gateway: Gateway, raw: RawUpstream, smuggle: bytes
) -> None:
    path = route(raw, answer(respond(200, b"ok")))
    data = smuggle.replace(b"{path}", path.encode())
    with rawhttp.RawConnection(gateway.port, timeout=5) as conn:
        conn.send(data)
        try:
            first = conn.response()
            assert first.status in (200, 400)
        except ConnectionError:
            pass  # refused by closing: as good
    time.sleep(0.2)
    assert all("smuggled" not in r.target for r in raw.requests)
    assert len(raw.for_path(path)) <= 1


def test_request_body_trickled_then_abandoned_frees_the_pool(gateway: Gateway, raw: RawUpstream) -> None:
    """Callers that start a chunked upload and vanish must not keep upstream connections."""
    path = route(raw, answer(respond(200, b"ok")))
    sockets = []
    for _ in range(6):  # more than pool_size
        sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=5)
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n".encode()
        )
        sockets.append(sock)
    time.sleep(0.2)
    for sock in sockets:
        sock.close()
    with http_client() as client:
        assert wait_until(lambda: client.get(gateway.proxy_url + path).status_code == 200, 5)


def test_upstream_answering_before_the_body_ends(gateway: Gateway, raw: RawUpstream) -> None:
    """An upstream may answer (here 200 at once) without reading the body: the caller gets that
    answer, and the connection is not reused (the upstream stopped reading mid-request)."""
    stop = threading.Event()

    def body() -> Iterator[bytes]:
        for _ in range(200):
            if stop.is_set():
                return
            yield b"x" * 65536

    with http_client() as client:
        try:
            response = client.post(gateway.proxy_url + "/echo/early?up_early=1", content=body())
            assert response.status_code == 200
        except httpx.HTTPError:
            pass  # the gateway may end the exchange while httpx still writes: also fine
        finally:
            stop.set()
        fine = route(raw, answer(respond(200, b"fine")))
        assert client.get(gateway.proxy_url + fine).content == b"fine"
        assert client.post(gateway.proxy_url + "/echo/after", content=b"abc").json()["body_bytes"] == 3


def test_response_abandoned_by_the_caller_closes_the_upstream_connection(
    gateway: Gateway, raw: RawUpstream
) -> None:
    """A caller that hangs up mid-download: the gateway stops reading the upstream and closes that
    connection (it is never pooled again with half a response in it)."""
    broken = threading.Event()

    def endless(request: Request, conn: socket.socket) -> bool:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {1024 * MiB}\r\n\r\n".encode())
        try:
            for _ in range(1024):
                conn.sendall(b"a" * MiB)
        except OSError:
            broken.set()  # the gateway closed its end
        return False

    path = route(raw, endless)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(rawhttp.build("GET", path))
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    assert broken.wait(10), "the gateway kept reading an abandoned response"
