"""What the worker processes of one gateway (one replica) share (issue 9, defect 9).

`gateway serve` makes a private directory (`prepare`, mode 0700) before it starts workers and
hands it to them in `GATEWAY_GROUP_DIR`; each shared thing is a small file there, mapped into
every worker's memory and guarded by `flock`:

- `Counters`: fixed-size failure counters (the token endpoint's throttle), so a limit means what
  the config says whatever the number of workers. Chosen over the store (every failed attempt
  by a stranger would be a write to the database) and over a `multiprocessing` shared block
  (workers are spawned, and a file outlives a crashed worker's half-done update no worse than
  memory does): one lock and a read per request, no server. Keys are hashed into a table of a
  fixed number of slots, so what a caller sends (a client id of any length) costs 24 bytes at
  most, and a flood of new keys evicts the oldest counters instead of growing memory.
- the `local` rate limits' state (gateway/pipeline/ratelimit/local.py, `SharedBackend`), so a
  client's limit, too, is the configured one whatever `workers` is.
- `Workers`: a heartbeat per worker (pid, ready, time), so `/readyz` answered by any worker
  speaks for the whole group: ready only when `workers` processes report ready within the
  last 2 seconds.
- `leader()`: one worker holds an exclusive lock on `leader.lock` for as long as it lives; the
  periodic maintenance writes (signing-key rotation, pruning) run there only. When it dies the
  kernel drops the lock and the next worker to ask takes it over.

Without `GATEWAY_GROUP_DIR` (one worker, or in-process tests) the process makes a directory of
its own, which is a group of one.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway")

ENV = "GATEWAY_GROUP_DIR"
_own_dir: Path | None = None


def prepare() -> str | None:
    """Make the group directory for the workers to come; returns it if made here."""
    if os.environ.get(ENV):
        return None
    made = tempfile.mkdtemp(prefix="gateway-group-")
    os.environ[ENV] = made
    return made


def directory() -> Path:
    global _own_dir
    given = os.environ.get(ENV)
    if given:
        return Path(given)
    if _own_dir is None:
        _own_dir = Path(tempfile.mkdtemp(prefix="gateway-group-"))
    return _own_dir


class Shared:
    """A file of `size` bytes in the group directory, mapped; `with shared as data:` holds its
    lock (flock, so it is the processes' and is dropped with a process that dies holding it)."""

    def __init__(self, name: str, size: int) -> None:
        self.path = path = directory() / name
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < size:
                os.ftruncate(fd, size)  # zero-filled: every slot empty
            self.map = mmap.mmap(fd, size)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd

    def __enter__(self) -> mmap.mmap:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self.map

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)


def key_hash(key: str) -> int:
    """A key's slot tag in a shared table: 64 bits of BLAKE2b, never 0 (0 marks an empty slot)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little") or 1


# Each shared table is open addressing: a key's record is in one of the _PROBE slots from its
# hash on, and the first field of every record is the key's hash (0: an empty slot).
_PROBE = 8
Record = tuple[Any, ...]


def find_slot(
    data: mmap.mmap,
    record: struct.Struct,
    slots: int,
    h: int,
    free: Callable[[Record], bool],
    age: Callable[[Record], float],
    taken: Sequence[int] = (),
) -> tuple[int, Record | None]:
    """The slot holding `h` and its record; else a slot to put it in, and None: the first `free`
    one (empty, or holding nothing that counts any more), else the one of the least `age`.
    Every probed slot is looked at before a free one is chosen: a key's record may sit behind a
    slot that has become free since it was written. `taken`: slots not to hand out (those of
    the other keys of one update)."""
    start = h % slots
    chosen, chosen_age = start, math.inf
    for i in range(_PROBE):
        slot = (start + i) % slots
        fields = record.unpack_from(data, slot * record.size)
        if fields[0] == h:
            return slot, fields
        if slot in taken:
            continue
        if free(fields):
            if chosen_age != -math.inf:  # the first free slot wins
                chosen, chosen_age = slot, -math.inf
        elif age(fields) < chosen_age:
            chosen, chosen_age = slot, age(fields)
    return chosen, None


# --- counters ----------------------------------------------------------------------------------

_SLOT = struct.Struct("<QqII")  # key hash, window number, count in it, count in the window before


class Counters:
    """Events per key over a sliding `window`, shared by the group: two fixed windows, the
    previous one weighted by how much of it the sliding window still covers."""

    def __init__(
        self, name: str, slots: int = 65536, window: float = 60.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.slots = slots
        self.window = window
        self.clock = clock
        self.shared = Shared(name, slots * _SLOT.size)

    def _find(self, data: mmap.mmap, h: int, number: int) -> tuple[int, Record | None]:
        # Free: empty, or nothing in it counts any more. Oldest: the least recent window.
        return find_slot(data, _SLOT, self.slots, h, lambda r: r[0] == 0 or r[1] < number - 1, lambda r: r[1])

    def _counts(self, data: mmap.mmap, slot: int, h: int, number: int) -> tuple[int, int]:
        key, seen, current, previous = _SLOT.unpack_from(data, slot * _SLOT.size)
        if key != h or seen < number - 1:
            return 0, 0
        if seen == number - 1:
            return 0, current
        return current, previous

    def estimate(self, key: str) -> tuple[float, float]:
        """(events in the sliding window, seconds until the estimate drops by one)."""
        now = self.clock()
        number, into = divmod(now, self.window)
        h = key_hash(key)
        with self.shared as data:
            slot, found = self._find(data, h, int(number))
            current, previous = (0, 0) if found is None else self._counts(data, slot, h, int(number))
        weight = 1 - into / self.window
        estimate = current + previous * weight
        # The previous window's share drains over the rest of this one; this window's events
        # start draining when it ends.
        until = self.window - into if previous == 0 else self.window / max(previous, 1)
        return estimate, until

    def add(self, key: str) -> None:
        number = int(self.clock() // self.window)
        h = key_hash(key)
        with self.shared as data:
            slot, _ = self._find(data, h, number)
            current, previous = self._counts(data, slot, h, number)
            _SLOT.pack_into(data, slot * _SLOT.size, h, number, current + 1, previous)


# --- workers' readiness --------------------------------------------------------------------------

_BEAT = struct.Struct("<iid")  # pid, ready, time of the beat
_WORKERS = 256
FRESH = 2.0  # seconds a heartbeat counts


class Workers:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.shared = Shared("workers", _WORKERS * _BEAT.size)
        self.pid = os.getpid()

    def beat(self, ready: bool) -> None:
        now = self.clock()
        with self.shared as data:
            free = None
            for i in range(_WORKERS):
                pid, _, at = _BEAT.unpack_from(data, i * _BEAT.size)
                if pid == self.pid:
                    free = i
                    break
                if free is None and (pid == 0 or now - at > FRESH * 5):
                    free = i
            if free is not None:
                _BEAT.pack_into(data, free * _BEAT.size, self.pid, int(ready), now)

    def leave(self) -> None:
        with self.shared as data:
            for i in range(_WORKERS):
                if _BEAT.unpack_from(data, i * _BEAT.size)[0] == self.pid:
                    _BEAT.pack_into(data, i * _BEAT.size, 0, 0, 0.0)

    def count(self) -> tuple[int, int]:
        """(workers that reported ready, workers that reported at all) within FRESH seconds, of
        those still alive (a worker killed a moment ago left a fresh beat behind)."""
        now = self.clock()
        ready = alive = 0
        with self.shared as data:
            beats = [_BEAT.unpack_from(data, i * _BEAT.size) for i in range(_WORKERS)]
        for pid, is_ready, at in beats:
            if pid and now - at <= FRESH and _alive(pid):
                alive += 1
                ready += is_ready
        return ready, alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process now holds that id: not our worker
        return False
    return True


# --- maintenance leader ---------------------------------------------------------------------------

_leader_fd: int | None = None


def leader() -> bool:
    """Whether this process runs the group's maintenance (it keeps the lock once it has it)."""
    global _leader_fd
    if _leader_fd is not None:
        return True
    fd = os.open(directory() / "leader.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _leader_fd = fd
    log.info("worker %d runs this replica's maintenance (signing-key rotation, pruning)", os.getpid())
    return True
