"""A worker's Runtime in-process, over a real, freshly initialised SQLite store (the runtime
always has its identity services, as in production)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.cli import main as cli
from gateway.config import load_config
from gateway.runtime import Runtime, open_identity


async def initialised_runtime(config_path: Path) -> Runtime:
    """`gateway init` on the config's store (once), then a Runtime on it, not yet started."""
    config = load_config(config_path, environ={})
    if config.store.path is None or not config.store.path.exists():
        assert await asyncio.to_thread(cli, ["init", "--config", str(config_path), "--json"]) == 0
    return Runtime(config, await asyncio.to_thread(open_identity, config))
