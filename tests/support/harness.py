"""A gateway deployment as the suites run it: a config file, a store, `gateway init` and
`gateway serve` on ephemeral ports of 127.0.0.1, and what a test reads from it (the admin API,
metrics, the log, the worker processes).

Suites differ only in settings (account, log level, reload, policies), which they pass in; the
integration suite takes a gateway that is already initialised and serving (`running_gateway`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.support.admin import Api
from tests.support.metrics import scrape
from tests.support.processes import (
    children,
    clean_env,
    gateway_command,
    http_client,
    stop_process,
    two_free_ports,
    write_config,
)


def write_policy(directory: Path, text: str) -> Path:
    """`text` as `routes.yaml` in `directory` (made if needed)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "routes.yaml"
    path.write_text(text)
    return path


class Gateway:
    """One gateway deployment: a config file in `directory`, a store (SQLite in `directory`
    unless given) and, once started, a `gateway serve` process. Ports are picked afresh at every
    start. `public_url` may be given to run a second replica of a deployment (same issuer, same
    store, same master key) on ports of its own; `config` keys go into the config file as they
    are (`reload=...`, `throttle=...`, ...)."""

    def __init__(
        self,
        directory: Path,
        store: str | None,
        policies: Sequence[Path | str],
        *,
        workers: int = 1,
        account: str = "test",
        log_level: str = "info",
        shutdown_timeout: str = "5s",
        public_url: str | None = None,
        master_key_file: Path | None = None,
        public_path: str = "",
        admin_path: str = "",
        **config: Any,
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.store = store or f"sqlite:///{directory / 'gateway.db'}"
        self.policies = list(policies)
        self.workers = workers
        self.account = account
        self.log_level = log_level
        self.shutdown_timeout = shutdown_timeout
        self.fixed_public_url = public_url
        self.public_path = public_path  # a path in public_url (the gateway's own endpoints move there)
        self.admin_path = admin_path  # a path in admin.public_url (the admin API moves there)
        self.master_key_file = master_key_file or directory / "master.key"
        self.config = {"reload": {"interval": "0"}, **config}  # tests reload by hand, if at all
        self.log_path = directory / "gateway.log"
        self.config_path = directory / "config.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}  # extra environment for its commands and processes
        self.admin_key: str | None = None
        self.admin_id: str | None = None
        self._pick_ports()

    def rewrite_config(self) -> None:
        """Write the config file again after a test changed `config` or `master_key_file`, on the
        same ports (URLs handed out before stay valid); takes effect at the next start."""
        self._pick_ports(keep=True)

    def _pick_ports(self, keep: bool = False) -> None:
        if not keep:
            self.port, self.admin_port = two_free_ports()
        extra = dict(self.config)
        if self.admin_path:
            extra.setdefault(
                "admin",
                {"listen": f"127.0.0.1:{self.admin_port}", "public_url": self.admin_url + self.admin_path},
            )
        write_config(
            self.directory,
            port=self.port,
            admin_port=self.admin_port,
            policies=self.policies,
            public_url=self.public_url,
            store=self.store,
            account_id=self.account,
            master_key_file=str(self.master_key_file),
            log_level=self.log_level,
            shutdown_timeout=self.shutdown_timeout,
            **extra,
        )

    @property
    def public_url(self) -> str:
        """The deployment's URL (its tokens' issuer)."""
        return self.fixed_public_url or f"http://127.0.0.1:{self.port}{self.public_path}"

    @property
    def proxy_url(self) -> str:
        """Where this process listens (differs from public_url for a second replica)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def token_url(self) -> str:
        return f"{self.proxy_url}{self.public_path}/oauth/token"

    # --- commands ---

    def run(
        self, *args: str, timeout: float = 60.0, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`gateway ARGS --config CONFIG` (the config is added when not given); `input_text` is
        its stdin."""
        command = gateway_command(*args)
        if "--config" not in args:
            command += ["--config", str(self.config_path)]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=clean_env(self.env),
            cwd=self.directory,
            **({"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}),
        )

    def run_json(self, *args: str) -> dict[str, Any]:
        """`gateway ARGS --json`, which must succeed; its JSON answer."""
        result = self.run(*args, "--json")
        assert result.returncode == 0, f"gateway {' '.join(args)} failed: {result.stdout}\n{result.stderr}"
        data: dict[str, Any] = json.loads(result.stdout)
        return data

    def init(self) -> dict[str, Any]:
        """`gateway init`; the first admin's key is kept for `admin()`."""
        data = self.run_json("init")
        self.admin_key = data["accessKey"]
        self.admin_id = data["clientId"]
        return data

    # --- serve ---

    def start(self, timeout: float = 40.0) -> None:
        for attempt in range(3):  # again on other ports if someone took ours meanwhile
            if attempt:
                self._pick_ports()
            log = self.log_path.open("ab")
            self.proc = subprocess.Popen(
                gateway_command("serve", "--config", str(self.config_path), "--workers", str(self.workers)),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=clean_env(self.env),
                cwd=self.directory,
                start_new_session=True,
            )
            log.close()
            if self._wait_ready(timeout):
                return
            stop_process(self.proc)
            if "cannot listen" not in self.log() and "address already in use" not in self.log().lower():
                break
        raise RuntimeError(f"the gateway did not become ready:\n{self.log()[-4000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        """Ready when admin /readyz answers 200 and, with several workers, when every worker does
        (a request answered while one worker still starts would prove nothing about it)."""
        deadline = time.monotonic() + timeout
        seen_ok = 0
        with http_client(1.0, fresh=True) as client:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    return False
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.admin_url}/readyz").status_code == 200:
                        seen_ok += 1
                        if self.workers == 1 or (len(self.worker_pids()) >= self.workers and seen_ok >= 3):
                            return True
                time.sleep(0.05)
        return False

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        assert self.proc is not None, "the gateway is not running"
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        return children(self.proc.pid) if self.proc is not None else []

    def worker_environ(self, name: str) -> set[str]:
        """The values of environment variable `name` the gateway's child processes were started
        with (Linux /proc), e.g. the metrics folder the supervisor hands its workers."""
        values: set[str] = set()
        for child in self.worker_pids():
            with contextlib.suppress(OSError):
                for entry in Path(f"/proc/{child}/environ").read_bytes().split(b"\0"):
                    key, _, value = entry.decode(errors="replace").partition("=")
                    if key == name:
                        values.add(value)
        return values

    def send_signal(self, sig: int) -> None:
        assert self.proc is not None, "the gateway is not running"
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None, "the gateway is not running"
        return self.proc.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Stop the gateway (its exit status; None if it had to be killed or was not running)."""
        if self.proc is None:
            return None
        code = stop_process(self.proc, sig, timeout)
        self.proc = None
        return code

    def kill9(self) -> None:
        """SIGKILL the whole gateway: the supervisor and every worker, no chance to flush."""
        assert self.proc is not None
        pids = [self.proc.pid, *self.worker_pids()]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    # --- observations ---

    def admin(self, key: str | None = "admin", *, keep_alive: bool = False) -> Api:
        """The admin API as the first admin (default), as another key or token, or anonymously
        (None)."""
        base = self.admin_url + self.admin_path
        return Api(base, self.admin_key if key == "admin" else key, keep_alive=keep_alive)

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of `name` whose labels include `labels` on admin /metrics."""
        return scrape(self.admin_url).total(name, **labels)

    def tokens_issued(self) -> float:
        return self.metric("gateway_tokens_issued_total")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 5.0, start: int = 0) -> str:
        """The log from offset `start` once it contains `text`; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log()[start:]
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the gateway log within {timeout}s:\n{log}")
            time.sleep(0.05)


@contextlib.contextmanager
def serving(gateway: Gateway) -> Iterator[Gateway]:
    """The gateway, started for the `with` block and stopped after it."""
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


@contextlib.contextmanager
def running_gateway(directory: Path, policies: Sequence[Path | str], **settings: Any) -> Iterator[Gateway]:
    """A gateway on SQLite in `directory`, initialised and serving for the `with` block, with the
    integration suite's settings (polling reload, a long shutdown timeout) unless `settings`
    say otherwise."""
    settings = {"reload": {"interval": "0.2s"}, "shutdown_timeout": "10s", **settings}
    gateway = Gateway(directory, None, policies, **settings)
    gateway.init()
    with serving(gateway):
        yield gateway


def launcher(
    make_directory: Callable[[str], Path], policy: Callable[[Path], Path], settings: dict[str, Any]
) -> tuple[Callable[..., Gateway], list[Gateway]]:
    """A suite's `launch(name, *, store=None, init=True, start=True, **settings)`: a gateway in a
    fresh directory from `make_directory` (pytest's `tmp_path_factory.mktemp`), with the policy
    `policy(directory)` writes, the suite's `settings` and the call's own; and the list of every
    gateway it made, for the fixture to stop."""
    started: list[Gateway] = []

    def launch(
        name: str = "gw", *, store: str | None = None, init: bool = True, start: bool = True, **kwargs: Any
    ) -> Gateway:
        directory = make_directory(name)
        gw = Gateway(directory, store, [policy(directory)], **{**settings, **kwargs})
        started.append(gw)
        if init:
            gw.init()
        if start:
            gw.start()
        return gw

    return launch, started
