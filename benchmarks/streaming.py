"""Large responses through the proxy: `python -m benchmarks.streaming` (issue 8's target "1 GiB
streamed through with the gateway's RSS growing < 50 MiB").

An nginx upstream on core 0 serves a file of `--size` MiB (sparse: read from the page cache, so
the upstream is not what limits); curl on core 0 downloads it, once straight from the upstream,
then through nginx as a proxy (`proxy_buffering off` with a 256 KiB buffer: it relays as it
reads, as the gateway does, rather than through temporary files) and
through the gateway (one worker), each on core 1, in interleaved rounds. While the gateway
streams, its resident memory (VmRSS, summed over its process group) is sampled every 20 ms.
Prints, per target, the median throughput and CPU seconds per GiB of the system under test, the
gateway's throughput as a ratio to nginx's, and the gateway's RSS before, at its peak and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.harness import group_cpu_ticks, group_rss
from benchmarks.services import (
    CORE_LOAD,
    CORE_SUT,
    PUBLIC_PATH,
    GatewaySpec,
    Service,
    ServiceError,
    Skip,
    Stack,
    _start_nginx,
    free_port,
    start_gateway,
    tool,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
TICK = os.sysconf("SC_CLK_TCK")


class PeakRss:
    """Samples a process group's RSS every 20 ms on a thread until stopped."""

    def __init__(self, pgid: int) -> None:
        self.pgid = pgid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, group_rss(self.pgid))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def download(url: str) -> tuple[int, float]:
    """curl on the load core: bytes received and seconds taken (the body is thrown away)."""
    started = time.perf_counter()
    out = subprocess.run(
        ["taskset", "-c", CORE_LOAD, "curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}", url],
        capture_output=True, text=True, timeout=600,
    )
    if out.returncode != 0:
        raise ServiceError(f"curl {url}: {out.stderr.strip()}")
    return int(out.stdout.strip()), time.perf_counter() - started


def start_services(stack: Stack, size: int) -> tuple[dict[str, Service], dict[str, str]]:
    big = stack.workdir / "big.bin"
    with open(big, "wb") as f:
        f.truncate(size)  # sparse: served from memory
    big.chmod(0o644)  # nginx's workers run as another user when started as root
    stack.workdir.chmod(0o755)
    port, proxy = free_port(), free_port()
    upstream = _start_nginx(stack, "stream-upstream", CORE_LOAD, f"""  server {{
    listen 127.0.0.1:{port};
    location / {{ root {big.parent}; try_files /{big.name} =404; default_type application/octet-stream; }}
  }}""", f"http://127.0.0.1:{port}/")
    upstream.urls["fast"] = f"http://127.0.0.1:{port}"
    nginx = _start_nginx(stack, "stream-nginx-proxy", CORE_SUT, f"""  upstream up {{ server 127.0.0.1:{port}; keepalive 16; }}
  server {{
    listen 127.0.0.1:{proxy};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;  # relayed as it arrives, as the gateway does,
      proxy_buffer_size 256k;  # through a buffer as large as the gateway's (forward/connection.py)
      proxy_buffers 4 256k;  # (unused with buffering off, but nginx checks the sizes agree)
      proxy_busy_buffers_size 256k;
    }}
  }}""", f"http://127.0.0.1:{proxy}/")
    gateway = start_gateway(stack, upstream, GatewaySpec())
    services = {"direct": upstream, "nginx_proxy": nginx, "gateway": gateway}
    urls = {
        "direct": f"http://127.0.0.1:{port}{PUBLIC_PATH}",
        "nginx_proxy": f"http://127.0.0.1:{proxy}{PUBLIC_PATH}",
        "gateway": gateway.urls["proxy"] + PUBLIC_PATH,
    }
    return services, urls


@dataclass
class Streamed:
    size: int  # bytes per download
    speeds: dict[str, list[float]]  # MiB/s per round, by target
    cpu: dict[str, list[float]]  # CPU seconds of the target's process group per GiB, per round
    rss_before: int  # the gateway's, in bytes
    rss_peak: int
    rss_after: int


def measure(size: int, rounds: int) -> Streamed:
    """Download `size` bytes from each target in `rounds` interleaved rounds."""
    for name in ("nginx", "curl", "taskset"):
        if tool(name) is None:
            raise Skip(f"benchmarks.streaming needs {name} (scripts/bench installs nginx)")
    with tempfile.TemporaryDirectory(prefix="gateway-streaming-") as tmp:
        stack = Stack(Path(tmp))
        try:
            services, urls = start_services(stack, size)
            gateway = services["gateway"]
            download(urls["gateway"])  # warm: the pool, the route, the first allocations
            result = Streamed(size, {n: [] for n in urls}, {n: [] for n in urls}, group_rss(gateway.pgid), 0, 0)
            for round_ in range(rounds):
                for name in urls if round_ % 2 == 0 else reversed(urls):
                    ticks = group_cpu_ticks(services[name].pgid)
                    with PeakRss(gateway.pgid) as sampled:
                        received, seconds = download(urls[name])
                    if received != size:
                        raise ServiceError(f"{name}: received {received} bytes of {size}")
                    if name == "gateway":
                        result.rss_peak = max(result.rss_peak, sampled.peak)
                    result.speeds[name].append(size / MiB / seconds)
                    result.cpu[name].append((group_cpu_ticks(services[name].pgid) - ticks) / TICK / (size / GiB))
            result.rss_after = group_rss(gateway.pgid)
            return result
        finally:
            stack.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="MiB per download (default 1024)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    try:
        result = measure(args.size * MiB, args.rounds)
    except Skip as exc:
        raise SystemExit(str(exc)) from None
    print(f"{args.size:,} MiB per download, {args.rounds} interleaved rounds; medians "
          f"(the load and the upstream on core {CORE_LOAD}, the system under test on core {CORE_SUT})")
    for name, speeds in result.speeds.items():
        note = "" if name == "direct" else f"   CPU {statistics.median(result.cpu[name]):.2f} s per GiB"
        print(f"  {name:12} {statistics.median(speeds):8,.0f} MiB/s{note}")
    ratio = [g / n for g, n in zip(result.speeds["gateway"], result.speeds["nginx_proxy"], strict=True)]
    print(f"  gateway ÷ nginx_proxy throughput: {statistics.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})")
    print(f"  gateway RSS: {result.rss_before / MiB:.1f} MiB before, peak {result.rss_peak / MiB:.1f} MiB "
          f"while streaming (+{(result.rss_peak - result.rss_before) / MiB:.1f}), {result.rss_after / MiB:.1f} MiB after")


if __name__ == "__main__":
    main()
