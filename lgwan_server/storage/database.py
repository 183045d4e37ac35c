"""One aiosqlite connection per process with a single-writer transaction lock.

aiosqlite runs statements one at a time on its thread, but nothing stops two coroutines from
interleaving statements of two transactions across ``await``s. ``transaction()`` therefore holds
an ``asyncio.Lock`` for the whole ``BEGIN IMMEDIATE … COMMIT``, the way Datasette funnels writes
through one writer and Synapse names each ``runInteraction``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any, Union

import aiosqlite

log = logging.getLogger(__name__)


Source = Union["Database", aiosqlite.Connection]


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",   # WAL + NORMAL: durable across process crashes
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=5000",
        "PRAGMA temp_store=MEMORY",
        "PRAGMA cache_size=-32768",    # 32 MiB page cache per connection
    ):
        await conn.execute(pragma)
    return conn


class Database:
    """The server's SQLite database: one writer connection and a few reader connections.

    Reads go to separate connections so that no coroutine ever sees another's uncommitted
    transaction on the shared writer (WAL lets readers run beside the writer).
    Code inside ``transaction()`` reads through the yielded writer to see its own writes.
    """

    def __init__(self, conn: aiosqlite.Connection, readers: list[aiosqlite.Connection], path: Path) -> None:
        self.conn = conn
        self.path = path
        self._readers = readers
        self._next_reader = 0
        self._write_lock = asyncio.Lock()
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, path: Path, readers: int = 2) -> Database:
        """Open (creating if needed) the database file with WAL, foreign keys and a busy timeout."""
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = await _connect(path)
        return cls(conn, [await _connect(path) for _ in range(readers)], path)

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
        await self.conn.close()

    def reader(self) -> aiosqlite.Connection:
        """A reader connection, round-robin."""
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        return self._readers[self._next_reader]

    @contextlib.asynccontextmanager
    async def transaction(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        """Run a write transaction; commit on success, roll back on any exception."""
        async with self._write_lock:
            started = time.perf_counter()
            self._after_commit.clear()
            await self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self._after_commit.clear()
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")
                # Still under the lock: callbacks (event fan-out, cache updates) run in commit order.
                callbacks, self._after_commit = self._after_commit, []
                for callback in callbacks:
                    try:
                        callback()
                    except Exception:
                        log.exception("after-commit callback failed", extra={"txn": name})
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > 200:
                    log.warning("slow transaction", extra={"txn": name, "ms": round(elapsed, 1)})

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the current transaction commits (dropped on rollback)."""
        if not self._write_lock.locked():
            raise RuntimeError("after_commit() outside a transaction")
        self._after_commit.append(callback)

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
        return await fetchone(self, sql, params)

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        return await fetchall(self, sql, params)

    async def fetchval(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return await fetchval(self, sql, params)


def _conn(src: Source) -> aiosqlite.Connection:
    return src.reader() if isinstance(src, Database) else src


# Every read runs as ONE job on the connection's thread (execute + fetch together). With separate
# execute()/fetch*() jobs another coroutine's query can run in between while the first statement is
# still active; SQLite then serves it from the open read snapshot, i.e. data older than commits that
# have already returned (a login could not see the session it had just written).

async def fetchone(src: Source, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
    """One row from a reader (``Database``) or from the writer inside a transaction (a connection)."""
    rows = await _conn(src).execute_fetchall(sql, tuple(params))
    return next(iter(rows), None)


async def fetchall(src: Source, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
    """All rows, like ``fetchone``."""
    return list(await _conn(src).execute_fetchall(sql, tuple(params)))


async def fetchval(src: Source, sql: str, params: Iterable[Any] = ()) -> Any:
    """The first column of the first row, or None."""
    row = await fetchone(src, sql, params)
    return None if row is None else row[0]
