"""Background loops that never die quietly (ARCHITECTURE habit 13, issue 9 defect 1).

A loop that keeps caches true (the change feed, signing-key rotation, policy reload) must
survive any exception: a single unexpected error used to end the change-feed task, and from then
on that worker never saw a revocation again. `every` runs one step at a fixed interval, forever;
an exception is logged (an `expected` one as a line, any other with its traceback the first
time its type is seen; then at most every `quiet` seconds, so a persistent fault cannot flood
the log), `on_error` gets the
chance to fail closed, and the loop goes on. Only cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable


async def every(
    interval: float,
    step: Callable[[], Awaitable[object]],
    *,
    what: str,
    log: logging.Logger,
    on_error: Callable[[], None] | None = None,
    expected: tuple[type[Exception], ...] = (),
    first_delay: bool = True,
    quiet: float = 10.0,
) -> None:
    """Await `step()` every `interval` seconds until cancelled; see the module docstring."""
    seen: set[type[BaseException]] = set()
    logged = float("-inf")
    if first_delay:
        await asyncio.sleep(interval)
    while True:
        try:
            await step()
        except Exception as exc:
            now = time.monotonic()
            if isinstance(exc, expected):
                # Expected (say, the store is down): a line, not a traceback.
                if now - logged > quiet:
                    log.warning("%s: %s", what, exc)
                    logged = now
            elif type(exc) not in seen:
                seen.add(type(exc))
                log.exception("%s failed; retrying every %.2g s", what, interval)
                logged = now
            elif now - logged > quiet:
                log.error("%s still failing: %s: %s", what, type(exc).__name__, exc)
                logged = now
            if on_error is not None:
                try:
                    on_error()
                except Exception:  # failing closed must not end the loop either
                    log.exception("%s: could not fail closed", what)
        await asyncio.sleep(interval)
