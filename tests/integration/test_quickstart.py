"""The README's first command, as a newcomer runs it: `scripts/run` starts the example upstream and
the gateway on their fixed ports, prints two curl commands (one passes, one is refused), and
Ctrl-C stops everything it started."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.processes import PROJECT_DIR, clean_env, http_client, listening

PORTS = (8080, 8081, 9001)  # fixed by config.example.yaml and scripts/run


def parse_curl(line: str) -> tuple[str, dict[str, str]] | None:
    """`curl -i [-H "Name: value"]... URL` → (URL, headers); None for any other line."""
    if not line.strip().startswith("curl "):
        return None
    words = shlex.split(line)
    url, headers = None, {}
    i = 1
    while i < len(words):
        if words[i] == "-H":
            name, _, value = words[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 1
        elif words[i].startswith("http://"):
            url = words[i]
        i += 1
    return (url, headers) if url else None


def port_free(port: int) -> bool:
    if listening(port):
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def read_curl_commands(
    proc: subprocess.Popen[bytes], deadline: float
) -> tuple[list[tuple[str, dict[str, str]]], str]:
    """The curl commands scripts/run prints (URL and headers), in order, and everything it printed."""
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    output = b""
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            piece = os.read(proc.stdout.fileno(), 65536)
            if piece:
                output += piece
        text = output.decode(errors="replace")
        commands = [c for line in text.splitlines() if (c := parse_curl(line))]
        if len(commands) >= 2 and "Ctrl-C" in text:
            return commands, text
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    return [], output.decode(errors="replace")


@pytest.mark.slow
def test_scripts_run_serves_the_two_printed_curl_commands(tmp_path: Path) -> None:
    busy = [port for port in PORTS if not port_free(port)]
    if busy:
        pytest.skip(f"scripts/run needs 127.0.0.1 ports {PORTS}; in use here: {busy}")
    stamp = (
        PROJECT_DIR
        / ".venv"
        / f".installed-{hashlib.sha256((PROJECT_DIR / 'pyproject.toml').read_bytes()).hexdigest()[:16]}"
    )
    budget = 60 if stamp.exists() else 240  # without the stamp, scripts/install runs pip first
    log = (tmp_path / "scripts-run.log").open("wb")
    proc = subprocess.Popen(
        [str(PROJECT_DIR / "scripts" / "run")],
        cwd=PROJECT_DIR,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        commands, printed = read_curl_commands(proc, time.monotonic() + budget)
        assert len(commands) == 2, (
            f"no two curl commands within {budget}s:\n{printed}\n{(tmp_path / 'scripts-run.log').read_text()}"
        )
        with http_client() as client:
            passes = client.get(commands[0][0], headers=commands[0][1])
            refused = client.get(commands[1][0], headers=commands[1][1])
        assert passes.status_code == 200, passes.text
        assert passes.json()["upstream"] == "example"  # it really went through to the example upstream
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"] == "invalid_token"
        # It tells where the console is and how to sign in to it.
        console = re.search(r"(http://\S+/console/) \(sign in with the first admin's access key", printed)
        assert console is not None, printed
        assert re.search(r"gateway keys create --config \S+ --client sc_\w+", printed), printed
        with http_client() as client:
            sign_in = client.get(console.group(1), follow_redirects=True)
        assert sign_in.status_code == 200 and 'name="credential"' in sign_in.text

        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        proc.wait(20)
        deadline = time.monotonic() + 5
        while any(listening(port) for port in PORTS) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [port for port in PORTS if listening(port)], "scripts/run left something listening"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        log.close()
