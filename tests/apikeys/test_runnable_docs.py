"""Every fenced shell block of the docs marked runnable works as written against a live gateway.

The marker is an HTML comment on the line before the fence (invisible when the page is rendered):

    <!-- runnable -->
    ```sh
    gateway keys list --config config.yaml --client $CLIENT
    ```

Each block runs in `bash -euo pipefail`, in the gateway's directory (where its `config.yaml` is),
with `gateway` on the PATH and `$ADMIN` (the admin listener), `$PROXY` (the proxy listener), `$KEY`
(the first admin's access key) and `$CLIENT` / `$C` (a fresh client of its own) set. `curl` fails
on an HTTP error status, so a block "works" only when every request in it succeeded.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.harness import Gateway
from tests.support.processes import PROJECT_DIR, clean_env

MARKER = "<!-- runnable -->"
_BLOCK = re.compile(r"^" + re.escape(MARKER) + r"\s*\n```(?:sh|bash|shell)\n(.*?)^```", re.M | re.S)


def runnable_blocks() -> list[tuple[str, str]]:
    """(where, script) for each marked block of README.md and docs/*.md."""
    found = []
    for page in [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]:
        text = page.read_text()
        for m in _BLOCK.finditer(text):
            line = text[: m.start()].count("\n") + 2
            found.append((f"{page.relative_to(PROJECT_DIR)}:{line}", m.group(1)))
        # A marker not followed by a shell fence is a mistake, not a skip.
        assert len(re.findall(r"^" + re.escape(MARKER) + r"\s*$", text, re.M)) == len(_BLOCK.findall(text)), (
            f"{page}: a {MARKER} without a sh block after it"
        )
    return found


BLOCKS = runnable_blocks()


def test_the_docs_mark_runnable_blocks() -> None:
    assert len(BLOCKS) >= 3, BLOCKS


@pytest.mark.parametrize(("where", "script"), BLOCKS, ids=[w for w, _ in BLOCKS])
def test_runnable_block(gw: Gateway, where: str, script: str) -> None:
    client_id = gw.admin().create_client()["clientId"]
    bin_dir = Path(os.environ.get("VIRTUAL_ENV") or PROJECT_DIR / ".venv") / "bin"
    env = clean_env(
        {
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "ADMIN": gw.admin_url,
            "PROXY": gw.proxy_url,
            "KEY": gw.admin_key or "",
            "CLIENT": client_id,
            "C": client_id,
        }
    )
    prelude = 'curl() { command curl --fail-with-body --show-error "$@"; }\n'
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", prelude + script],
        cwd=gw.directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{where}:\n{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
