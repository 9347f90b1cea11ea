"""Holds the current policy and swaps in a new one atomically on change or SIGHUP.

A new version is compiled off the event loop; if it is invalid, every problem is logged and the
old table keeps serving. Readers take `holder.current` once per request, so a request never sees
half of one version and half of another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.background import every
from gateway.metrics import POLICY_RELOADS
from gateway.policy.loader import Policy, PolicyError, load_policy, policy_files

log = logging.getLogger("gateway.policy")

Signature = tuple[tuple[str, int, int], ...]


def _signature(paths: tuple[Path, ...]) -> Signature:
    files, _ = policy_files(paths)
    out = []
    for file in files:
        try:
            st = file.stat()
        except OSError:
            continue
        out.append((str(file), st.st_mtime_ns, st.st_size))
    return tuple(out)


class PolicyHolder:
    def __init__(
        self,
        paths: tuple[Path, ...],
        base_path: str = "",
        on_swap: Callable[[Policy], None] | None = None,
        initial: Policy | None = None,
    ) -> None:
        self.paths = paths
        self.base_path = base_path
        self.on_swap = on_swap
        self._signature = _signature(paths)
        # At start an invalid policy is fatal (load_policy raises).
        self.current: Policy = initial if initial is not None else load_policy(paths, base_path)
        self._lock = asyncio.Lock()

    async def reload(self) -> bool:
        """Load the files again; swap if valid. Returns whether the new version is serving."""
        async with self._lock:
            self._signature = await asyncio.to_thread(_signature, self.paths)
            try:
                policy = await asyncio.to_thread(load_policy, self.paths, self.base_path)
            except PolicyError as exc:
                POLICY_RELOADS.labels("invalid").inc()
                log.error(
                    "policy reload refused; the previous rules keep serving:\n  %s",
                    "\n  ".join(exc.problems),
                )
                return False
            self.current = policy
            POLICY_RELOADS.labels("ok").inc()
            log.info("policy reloaded: %d routes, %d upstreams", len(policy.routes), len(policy.upstreams))
            if self.on_swap is not None:
                self.on_swap(policy)
            return True

    async def _check(self) -> None:
        if await asyncio.to_thread(_signature, self.paths) != self._signature:
            await self.reload()

    async def watch(self, interval: float) -> None:
        """Poll the files' names, sizes and modification times; reload when they change. No
        exception ends the watch (issue 9, defect 1): the previous rules keep serving."""
        await every(interval, self._check, what="policy reload", log=log)
