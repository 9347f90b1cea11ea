"""Bodies stream through the gateway both ways with bounded memory (README "streaming both ways";
config.example.yaml: "Bodies are streamed, never held in memory").

Hundreds of MiB go through the real gateway; neither this test nor the upstream holds them (see
tests/support/data.py), and the gateway's resident memory is sampled while they pass."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.support.data import pattern, pattern_digest
from tests.support.harness import Gateway
from tests.support.processes import MARK, Upstream, http_client, status_kib

MiB = 1024 * 1024
SIZE = 480 * MiB
MEMORY_LIMIT = 150 * MiB  # well under SIZE: the body is never held whole


class _Peak:
    value = 0


@contextmanager
def peak_rss(pid: int) -> Iterator[_Peak]:
    """Sample the process's VmRSS every 20 ms while the block runs; `.value` is the peak in bytes."""
    peak = _Peak()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak.value = max(peak.value, status_kib(pid, "VmRSS") * 1024)
            except (OSError, KeyError):
                return
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join(5)


@pytest.mark.slow
def test_large_upload_streams_with_bounded_memory(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    sent = hashlib.sha256()

    def body() -> Iterator[bytes]:
        for piece in pattern(SIZE):
            sent.update(piece)
            yield piece

    with peak_rss(gateway.pid) as peak, http_client(timeout=60) as client:
        response = client.post(gateway.proxy_url + "/echo/upload", content=body(), headers={MARK: mark})
    assert response.status_code == 200, response.text[:500]
    received = response.json()
    assert received["body_bytes"] == SIZE
    assert received["body_sha256"] == sent.hexdigest()
    assert peak.value < MEMORY_LIMIT, f"gateway RSS peaked at {peak.value / MiB:.0f} MiB"
    assert status_kib(gateway.pid, "VmHWM") * 1024 < MEMORY_LIMIT


@pytest.mark.slow
def test_large_upload_with_content_length_streams(gateway: Gateway, upstream: Upstream, mark: str) -> None:
    size = SIZE // 2
    with peak_rss(gateway.pid) as peak, http_client(timeout=60) as client:
        response = client.post(
            gateway.proxy_url + "/echo/upload",
            content=pattern(size),
            headers={MARK: mark, "Content-Length": str(size)},
        )
    assert response.status_code == 200, response.text[:500]
    [record] = upstream.marked(mark)
    assert record["body_bytes"] == size
    assert record["body_sha256"] == pattern_digest(size)
    assert [v for n, v in record["headers"] if n == "content-length"] == [str(size)]
    assert peak.value < MEMORY_LIMIT, f"gateway RSS peaked at {peak.value / MiB:.0f} MiB"


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_download_streams_with_bounded_memory(gateway: Gateway, mark: str, chunked: bool) -> None:
    size = SIZE if not chunked else SIZE // 2
    query = f"up_download={size}" + ("&up_chunked=1" if chunked else "")
    digest = hashlib.sha256()
    count = 0
    with (
        peak_rss(gateway.pid) as peak,
        http_client(timeout=60) as client,
        client.stream("GET", f"{gateway.proxy_url}/echo/download?{query}", headers={MARK: mark}) as response,
    ):
        assert response.status_code == 200
        if not chunked:
            assert response.headers["content-length"] == str(size)
        for piece in response.iter_raw(256 * 1024):
            digest.update(piece)
            count += len(piece)
    assert count == size
    assert digest.hexdigest() == pattern_digest(size)
    assert peak.value < MEMORY_LIMIT, f"gateway RSS peaked at {peak.value / MiB:.0f} MiB"
