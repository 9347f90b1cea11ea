"""The worker supervisor's decisions (issue 9, defect 11), on a fake clock: back-off per worker
slot, reset after a healthy period, and never a delay for the other slots."""

from __future__ import annotations

import pytest

from gateway.supervisor import Supervisor


class FakeProcess:
    pids = iter(range(100, 10_000))

    def __init__(self) -> None:
        self.pid: int | None = next(self.pids)
        self.exitcode: int | None = None
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def die(self) -> None:
        self.alive, self.exitcode = False, -9


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def supervisor(clock: Clock, size: int = 2) -> tuple[Supervisor, list[FakeProcess]]:
    started: list[FakeProcess] = []

    def start() -> FakeProcess:
        started.append(FakeProcess())
        return started[-1]

    return Supervisor(size, start, clock=clock), started


def current(sup: Supervisor, slot: int) -> FakeProcess | None:
    process = sup.slots[slot].process
    assert process is None or isinstance(process, FakeProcess)
    return process


def kill_and_time_restart(sup: Supervisor, clock: Clock, slot: int) -> float:
    """Kill the slot's worker; how long until the supervisor starts its replacement (ticking
    every 0.1 s, so to within 0.1 s)."""
    victim = current(sup, slot)
    assert victim is not None
    victim.die()
    began = clock.now
    while True:
        sup.tick()
        replacement = current(sup, slot)
        if replacement is not None and replacement is not victim:
            return clock.now - began
        clock.now += 0.1
        assert clock.now - began < 60


def test_a_worker_that_served_a_while_is_replaced_at_once(clock: Clock) -> None:
    sup, _ = supervisor(clock)
    for _ in range(5):
        clock.now += 10  # healthy for longer than healthy_after
        assert kill_and_time_restart(sup, clock, 0) == 0.0


def test_a_crash_loop_backs_off_and_is_forgotten_after_a_healthy_period(clock: Clock) -> None:
    sup, _ = supervisor(clock)
    clock.now += 10
    delays = [kill_and_time_restart(sup, clock, 0) for _ in range(9)]
    assert delays == pytest.approx([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0], abs=0.11)
    clock.now += sup.healthy_after  # the last replacement stays up
    sup.tick()
    assert kill_and_time_restart(sup, clock, 0) == 0.0


def test_one_slot_backing_off_never_delays_another(clock: Clock) -> None:
    sup, _ = supervisor(clock)
    clock.now += 10
    for _ in range(6):  # slot 0 in a crash loop: its next restart is seconds away
        kill_and_time_restart(sup, clock, 0)
    dying = current(sup, 0)
    assert dying is not None
    dying.die()
    sup.tick()
    assert current(sup, 0) is None  # waiting out its back-off
    clock.now += 10
    sup.tick()
    # Slot 1 crashes twice in quick succession: replaced at once, then after 0.5 s, whatever
    # slot 0 is doing.
    assert kill_and_time_restart(sup, clock, 1) == 0.0
    assert kill_and_time_restart(sup, clock, 1) == pytest.approx(0.5, abs=0.11)


def test_the_log_states_the_delay_it_applies(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    sup, _ = supervisor(clock, size=1)
    clock.now += 10
    kill_and_time_restart(sup, clock, 0)
    kill_and_time_restart(sup, clock, 0)
    messages = [r.getMessage() for r in caplog.records if "exited" in r.getMessage()]
    assert messages[0].endswith("starting another in 0.0 s")
    assert messages[1].endswith("starting another in 0.5 s")
