"""Background loops survive any exception (issue 9, defect 1), and say so once, not per turn."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from gateway.background import every


class Flaky(Exception):
    pass


def run_until(calls: list[int], count: int, step: Any, **options: Any) -> None:
    """Run `every(step)` until it has been called `count` times, then cancel it."""

    async def main() -> None:
        task = asyncio.create_task(every(0.001, step, log=logging.getLogger("t"), **options))
        while len(calls) < count:
            await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_a_loop_survives_every_kind_of_exception(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []
    failed_closed: list[int] = []

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) <= 6:
            raise (Flaky if len(calls) % 2 else KeyError)("boom")

    with caplog.at_level(logging.INFO, "t"):
        run_until(calls, 10, step, what="test loop", on_error=lambda: failed_closed.append(1))
    assert len(failed_closed) == 6
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert sorted(r.exc_info[0].__name__ for r in tracebacks if r.exc_info and r.exc_info[0]) == [
        "Flaky",
        "KeyError",
    ]


def test_an_expected_error_is_one_line_and_a_failing_fail_closed_does_not_end_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []

    async def step() -> None:
        calls.append(1)
        raise Flaky("store down")

    def fail_closed() -> None:
        raise RuntimeError("cannot even fail closed")

    with caplog.at_level(logging.INFO, "t"):
        run_until(calls, 5, step, what="feed", on_error=fail_closed, expected=(Flaky,))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["feed: store down"]  # once per 10 s, no traceback
    assert not warnings[0].exc_info
