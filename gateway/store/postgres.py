"""The PostgreSQL backend: a small connection pool whose every call has a deadline.

Why not psycopg_pool (issue 9, defect 10): with the store unreachable its calls waited for the
pool's 10 s, or, with packets silently dropped, forever (libpq has no timeout for a query whose
answer never comes); after an outage it reconnected with a back-off of 1, 2, 4… s, so recovery
took up to 7 s. Here:

- every read has READ_TIMEOUT (0.5 s) and every write WRITE_TIMEOUT (2 s), from asking for a
  connection to the last row; a watchdog thread shuts the socket of a call that overruns, which
  makes the blocked driver call fail at once, and the connection is thrown away;
- a connection is made when one is needed (connect_timeout: 2 s, libpq's minimum), so the first
  call after the store is back connects at once: recovery is the next change-feed poll;
- TCP keepalives and tcp_user_timeout notice a dead peer on idle connections.

The request path does not wait for any of this: it refuses what the change feed cannot prove
fresh (gateway.identity.directory), whatever a stuck call is doing.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from gateway.store.backend import StoreError

READ_TIMEOUT = 0.5
WRITE_TIMEOUT = 2.0
# `exclusive` may wait on the network inside (the vault's refresh at a provider): no hot path
# or feed waits on it.
EXCLUSIVE_TIMEOUT = 30.0
_WRITE_LOCK_ID = 7_262_001  # the advisory lock every PostgreSQL write transaction takes
_KEYED_LOCK_CLASS = 7_262_005  # advisory locks per key (two-int form: a namespace of its own)
# libpq settings unless the store URL sets them: notice a dead peer within about two seconds on
# an idle connection, and within one when sent data is never acknowledged.
_TCP_DEFAULTS = {
    "connect_timeout": "2",
    "keepalives": "1",
    "keepalives_idle": "1",
    "keepalives_interval": "1",
    "keepalives_count": "2",
    "tcp_user_timeout": "1000",
}


class _Watch:
    __slots__ = ("conn", "deadline", "fired")

    def __init__(self, deadline: float, conn: Any) -> None:
        self.deadline = deadline
        self.conn = conn
        self.fired = False


class _Watchdog:
    """One thread that cuts the connection of any call past its deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, conn: Any) -> _Watch:
        watch = _Watch(deadline, conn)
        with self._cond:
            heapq.heappush(self._heap, (deadline, next(self._order), watch))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return watch

    def disarm(self, watch: _Watch) -> None:
        with self._cond:
            watch.conn = None  # the heap entry stays until its deadline, harmless

    def _run(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].conn is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                watch = heapq.heappop(self._heap)[2]
                watch.fired = True
                _cut(watch.conn)
                watch.conn = None


def _cut(conn: Any) -> None:
    """Shut the connection's socket: the thread blocked on it gets an error at once."""
    with contextlib.suppress(Exception):
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        with sock:
            sock.shutdown(socket.SHUT_RDWR)


_WATCHDOG = _Watchdog()


class _PgCursor:
    def __init__(self, cur: Any) -> None:
        self._cur = cur

    def execute(self, sql: str, params: Any = ()) -> _PgCursor:
        self._cur.execute(sql.replace("?", "%s"), params)
        return self

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._cur.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self._cur.rowcount)


class PostgresBackend:
    dialect = "postgresql"

    def __init__(self, url: str, max_size: int = 8) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self._psycopg = psycopg
        try:
            params = {**_TCP_DEFAULTS, **conninfo_to_dict(url)}
        except psycopg.Error as exc:
            raise StoreError(f"store: not a PostgreSQL URL ({type(exc).__name__})") from None
        self._conninfo = make_conninfo(**{k: str(v) for k, v in params.items()})
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_size)
        with self.read(timeout=10) as cur:  # reachable now, or fail at start
            cur.execute("SELECT 1")

    def _connect(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._psycopg.connect(self._conninfo, autocommit=True)

    @contextlib.contextmanager
    def _connection(self, timeout: float) -> Iterator[Any]:
        deadline = time.monotonic() + timeout
        if not self._slots.acquire(timeout=timeout):
            raise StoreError(f"PostgreSQL store: no connection free within {timeout:g} s")
        try:
            try:
                conn = self._connect()
            except self._psycopg.Error as exc:
                raise StoreError(f"PostgreSQL store: cannot connect: {type(exc).__name__}") from None
            watch = _WATCHDOG.arm(deadline, conn)
            broken = True
            try:
                yield conn
                broken = False
            except self._psycopg.Error as exc:
                if watch.fired:
                    raise StoreError(f"PostgreSQL store: no answer within {timeout:g} s") from None
                raise StoreError(f"PostgreSQL store error: {type(exc).__name__}: {exc}") from None
            except BaseException:
                broken = False  # the caller's own error (Missing, Conflict): the connection is fine
                raise
            finally:
                _WATCHDOG.disarm(watch)
                idle = self._psycopg.pq.TransactionStatus.IDLE
                if (
                    not broken
                    and not watch.fired
                    and not conn.closed
                    and conn.info.transaction_status == idle
                ):
                    with self._lock:
                        self._idle.append(conn)
                else:
                    with contextlib.suppress(Exception):
                        conn.close()
        finally:
            self._slots.release()

    @contextlib.contextmanager
    def read(self, timeout: float = READ_TIMEOUT) -> Iterator[_PgCursor]:
        with self._connection(timeout) as conn, conn.cursor() as cur:
            yield _PgCursor(cur)

    @contextlib.contextmanager
    def write(self, timeout: float = WRITE_TIMEOUT) -> Iterator[_PgCursor]:
        with self._connection(timeout) as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK_ID,))
            yield _PgCursor(cur)

    @contextlib.contextmanager
    def exclusive(self, key: str, timeout: float = EXCLUSIVE_TIMEOUT) -> Iterator[_PgCursor]:
        """A transaction holding an advisory lock on `key` only (other keys and ordinary writes
        go on), released by commit, rollback or a dropped connection (a crashed worker). The
        global write lock is taken later, by `join_writers`, just before writing: a keyed holder
        never waits for it while holding something an ordinary writer needs first."""
        with self._connection(timeout) as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_KEYED_LOCK_CLASS, key))
            yield _PgCursor(cur)

    def join_writers(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_ID,))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):
                conn.close()
