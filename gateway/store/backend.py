"""The two storage backends behind one small interface, chosen by the `store:` URL's scheme.

SQL is written once with `?` placeholders; the PostgreSQL cursor rewrites them to `%s`. Write
transactions are serialized on both backends (SQLite: `BEGIN IMMEDIATE`; PostgreSQL: a
transaction-level advisory lock), which keeps the change feed's sequence numbers committed in
order, so a worker polling `seq > last` can never skip one. Driver errors become StoreError here.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from gateway.config import StoreURL


class StoreError(Exception):
    """The store could not be reached or refused the operation. Never carries secrets."""


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Backend(Protocol):
    dialect: str

    # `timeout`: seconds the whole call may take (PostgreSQL; SQLite is a local file). The
    # defaults are short (reads 0.5 s): the change feed and the request path wait on them.
    def read(self, timeout: float = ...) -> contextlib.AbstractContextManager[Cursor]: ...
    def write(self, timeout: float = ...) -> contextlib.AbstractContextManager[Cursor]: ...
    def exclusive(self, key: str) -> contextlib.AbstractContextManager[Cursor]: ...
    def join_writers(self, cur: Cursor) -> None: ...
    def close(self) -> None: ...


class SQLiteBackend:
    """One connection per thread; WAL so readers never wait for the writer; synchronous=FULL so
    an acknowledged write survives a crash (kill -9, power loss)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # The database holds key material's public halves, hashes and sealed secrets: readable by
        # its owner only (SQLite gives its -wal and -shm files the database file's mode).
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Calls in flight on worker threads: close() waits for them, because closing a SQLite
        # connection under a running statement crashes the process (a poll still running on
        # its thread when the worker shuts down).
        self._idle = threading.Condition(self._lock)
        self._busy = 0

    @contextlib.contextmanager
    def _using(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._busy += 1
        try:
            yield self._conn()
        finally:
            with self._lock:
                self._busy -= 1
                self._idle.notify_all()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
                conn.execute("PRAGMA busy_timeout=10000")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from None
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def read(self, timeout: float = 0.0) -> Iterator[Cursor]:
        try:
            with self._using() as conn:
                cur = conn.cursor()
                try:
                    yield cur
                finally:
                    cur.close()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store error: {exc}") from None

    @contextlib.contextmanager
    def write(self, timeout: float = 0.0) -> Iterator[Cursor]:
        with self._using() as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store error: {exc}") from None
            cur = conn.cursor()
            try:
                yield cur
                conn.execute("COMMIT")
            except BaseException as exc:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"SQLite store error: {exc}") from None
                raise
            finally:
                cur.close()

    def exclusive(self, key: str) -> contextlib.AbstractContextManager[Cursor]:
        """A transaction only one holder of `key` runs at a time, across processes, which may
        wait on the network inside (the vault's refresh). SQLite has one write lock: this is an
        immediate transaction, so it already excludes every other writer."""
        return self.write()

    def join_writers(self, cur: Cursor) -> None:
        """Within `exclusive`, before writing: here the transaction holds the write lock already."""

    def close(self) -> None:
        with self._lock:
            self._idle.wait_for(lambda: self._busy == 0, timeout=15)
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()


def open_backend(url: StoreURL) -> Backend:
    if url.scheme == "sqlite":
        assert url.path is not None
        return SQLiteBackend(url.path)
    from gateway.store.postgres import PostgresBackend

    return PostgresBackend(url.url)
