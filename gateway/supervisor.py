"""Which worker processes to (re)start, and when (issue 9, defect 11).

Each worker slot backs off on its own: a worker that dies after serving for `healthy_after`
seconds is replaced at once; one that keeps dying soon after it started (say, a policy on disk
that no longer loads) is restarted after 0.5 s, then 1, 2, 4… up to 30 s, so it cannot spin.
Another slot's crashes never delay a restart, and a slot's back-off is forgotten once its worker
has stayed up for `healthy_after`. (The supervisor this replaces had one back-off for all
workers that never went down: two crashes within 30 s left the gateway without any worker for up
to 28 s, while its log announced a delay it did not apply.)

The process handling stays in gateway.server; this module only decides, so it is tested with a
fake clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("gateway")


class Process(Protocol):
    pid: int | None
    exitcode: int | None

    def is_alive(self) -> bool: ...


@dataclass
class _Slot:
    process: Process | None
    started_at: float
    quick_deaths: int = 0  # consecutive deaths before `healthy_after`
    restart_at: float = 0.0


class Supervisor:
    def __init__(
        self,
        size: int,
        start: Callable[[], Process],
        on_exit: Callable[[Process], None] = lambda process: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        healthy_after: float = 5.0,
        first_delay: float = 0.5,
        max_delay: float = 30.0,
    ) -> None:
        self._start = start
        self._on_exit = on_exit
        self._clock = clock
        self.healthy_after = healthy_after
        self.first_delay = first_delay
        self.max_delay = max_delay
        now = clock()
        self.slots = [_Slot(start(), now) for _ in range(size)]

    def delay(self, quick_deaths: int) -> float:
        """The wait before a restart: none after a healthy run, then doubling from first_delay."""
        if quick_deaths == 0:
            return 0.0
        return float(min(self.first_delay * 2 ** (quick_deaths - 1), self.max_delay))

    def tick(self) -> None:
        """Reap dead workers and start the replacements that are due. Call it often (0.1 s)."""
        now = self._clock()
        for slot in self.slots:
            process = slot.process
            if process is not None:
                if process.is_alive():
                    if slot.quick_deaths and now - slot.started_at >= self.healthy_after:
                        slot.quick_deaths = 0
                    continue
                self._on_exit(process)
                lived = now - slot.started_at
                slot.quick_deaths = slot.quick_deaths + 1 if lived < self.healthy_after else 0
                wait = self.delay(slot.quick_deaths)
                slot.process, slot.restart_at = None, now + wait
                log.error(
                    "worker %s exited with %s after %.1f s; starting another in %.1f s",
                    process.pid,
                    process.exitcode,
                    lived,
                    wait,
                )
            if now >= slot.restart_at:
                slot.process, slot.started_at = self._start(), now

    def processes(self) -> list[Process]:
        return [slot.process for slot in self.slots if slot.process is not None]
