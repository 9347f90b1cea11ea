"""The README's first command, as a newcomer runs it: `scripts/run` starts the example upstream and
the gateway, prints two curl commands (one passes, one is refused), and Ctrl-C stops everything
it started. It runs on ports and a config of its own (GATEWAY_CONFIG, GATEWAY_LISTEN, ...), so it
passes while the README's `scripts/run` holds the default ports (issue 14)."""

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
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.processes import PROJECT_DIR, clean_env, free_port, http_client, listening


def own_deployment(directory: Path) -> tuple[dict[str, str], tuple[int, int, int]]:
    """config.example.yaml and the example policy moved to free ports and a store in `directory`:
    the environment scripts/run takes them from, and the three ports."""
    ports = tuple(free_port() for _ in range(3))
    proxy, admin, upstream = ports
    policy_dir = directory / "policies"
    policy_dir.mkdir(parents=True)
    (policy_dir / "example.yaml").write_text(
        (PROJECT_DIR / "policies" / "example.yaml")
        .read_text()
        .replace("127.0.0.1:9001", f"127.0.0.1:{upstream}")
    )
    config = yaml.safe_load((PROJECT_DIR / "config.example.yaml").read_text())
    config.update(
        public_url=f"http://127.0.0.1:{proxy}",
        listen=f"127.0.0.1:{proxy}",
        admin={"listen": f"127.0.0.1:{admin}", "public_url": f"http://127.0.0.1:{admin}"},
        store="sqlite:///./data/gateway.db",
        master_key_file="./data/master.key",
        policies=["policies/"],
    )
    (directory / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {
        "GATEWAY_CONFIG": str(directory / "config.yaml"),
        "GATEWAY_LISTEN": f"127.0.0.1:{proxy}",
        "GATEWAY_ADMIN_LISTEN": f"127.0.0.1:{admin}",
        "GATEWAY_EXAMPLE_UPSTREAM": f"127.0.0.1:{upstream}",
    }
    return env, (proxy, admin, upstream)


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


@contextlib.contextmanager
def default_ports_taken() -> Iterator[None]:
    """Hold the README's default ports (8080, 8081, 9001) as a running `scripts/run` would, where
    they are free: the test must not need them."""
    held = []
    try:
        for port in (8080, 8081, 9001):
            sock = socket.socket()
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen()
                held.append(sock)
            except OSError:
                sock.close()  # taken already (by the README's scripts/run, say): as good
        yield
    finally:
        for sock in held:
            sock.close()


@pytest.mark.slow
def test_scripts_run_serves_the_two_printed_curl_commands(tmp_path: Path) -> None:
    with default_ports_taken():
        run_quickstart(tmp_path)


def run_quickstart(tmp_path: Path) -> None:
    env, ports = own_deployment(tmp_path / "run")
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
        env=clean_env(env),
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

        time.sleep(0.5)  # the first admin's line comes after "Ctrl-C stops ..."
        with contextlib.suppress(BlockingIOError, TypeError):
            assert proc.stdout is not None
            printed += (proc.stdout.read() or b"").decode(errors="replace")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        proc.wait(20)
        deadline = time.monotonic() + 5
        while any(listening(port) for port in ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [port for port in ports if listening(port)], "scripts/run left something listening"

        # Output went to a pipe, so the first admin's key went to a file only its owner reads,
        # and the database is its owner's only too.
        data = tmp_path / "run" / "data"
        key_file = data / "first-admin.key"
        assert str(key_file) in printed, printed
        admin_key = key_file.read_text().strip()
        assert admin_key.startswith("sc_") and admin_key not in printed
        assert admin_key not in (tmp_path / "scripts-run.log").read_text()
        for path in (key_file, data / "gateway.db", data / "master.key"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.stdout:
            proc.stdout.close()
        log.close()
