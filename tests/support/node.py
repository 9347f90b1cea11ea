"""The node packages under tests/node (installed by scripts/install with `npm ci`): a test that
needs them skips with the reason when node or the packages are missing, unless
GATEWAY_TEST_REQUIRE_NODE is set (as .ci/run sets it), where it fails instead."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.processes import TESTS_DIR

NODE_DIR = TESTS_DIR / "node"


def require_node(*packages: str) -> str:
    """The node executable, once `packages` are installed in tests/node/node_modules."""
    node = shutil.which("node")
    missing = [p for p in packages if not (NODE_DIR / "node_modules" / p / "package.json").exists()]
    why = None
    if node is None:
        why = "node is not installed (scripts/install installs the tests' node packages when it is)"
    elif missing:
        why = f"tests/node packages missing ({', '.join(missing)}): run scripts/install"
    if why is not None:
        if os.environ.get("GATEWAY_TEST_REQUIRE_NODE"):
            pytest.fail(why)
        pytest.skip(why)
    assert node is not None
    return node


def script(name: str) -> Path:
    return NODE_DIR / name
