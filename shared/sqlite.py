"""SQLite for an aiohttp tier: one writer connection under a transaction lock, reader connections,
one-job read helpers and numbered, forward-only migrations.

aiosqlite runs statements one at a time on its thread, but nothing stops two coroutines from
interleaving statements of two transactions across ``await``s. ``transaction()`` therefore holds
an ``asyncio.Lock`` for the whole ``BEGIN IMMEDIATE … COMMIT``, the way Datasette funnels writes
through one writer and Synapse names each ``runInteraction``.

Both tiers use this module (``lgwan_server.storage.database``/``.migrate`` and
``internet_relay.storage.database`` re-export it); the relay wheel ships it like any other shared
module it imports (deploy/packaging/build_wheels.py), so a relay host still installs no LGWAN code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self, Union

import aiosqlite

from .tasks import finish
from .timeutil import now_iso

log = logging.getLogger(__name__)

Source = Union["Database", aiosqlite.Connection]

SLOW_TRANSACTION_MS = 200
_MIGRATION_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Database:
    """A tier's SQLite database: one writer connection and a few reader connections.

    Reads go to separate connections so that no coroutine ever sees another's uncommitted
    transaction on the shared writer (WAL lets readers run beside the writer).
    Code inside ``transaction()`` reads through the yielded writer to see its own writes.
    A tier may subclass it to add pragmas (``PRAGMAS``).
    """

    PRAGMAS: ClassVar[tuple[str, ...]] = (
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",   # WAL + NORMAL: durable across process crashes
        "PRAGMA foreign_keys=ON",
        "PRAGMA busy_timeout=5000",
        "PRAGMA temp_store=MEMORY",
    )

    def __init__(self, conn: aiosqlite.Connection, readers: list[aiosqlite.Connection], path: Path) -> None:
        self.conn = conn
        self.path = path
        self._readers = readers
        self._next_reader = 0
        self._write_lock = asyncio.Lock()
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    async def _connect(cls, path: Path) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = aiosqlite.Row
        for pragma in cls.PRAGMAS:
            await conn.execute(pragma)
        return conn

    @classmethod
    async def open(cls, path: Path, readers: int = 2) -> Self:
        """Open (creating if needed) the database file with WAL, foreign keys and a busy timeout.

        A missing parent folder is created private (0700): it holds sessions and messages. The
        systemd units of both tiers create their state folder 0700 too (StateDirectoryMode).
        """
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = await cls._connect(path)
        return cls(conn, [await cls._connect(path) for _ in range(readers)], path)

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
        """Run a write transaction; commit on success, roll back on any exception.

        Args:
            name: what the transaction does, for the logs (slow or failed after-commit callbacks).
        """
        async with self._write_lock:
            started = time.perf_counter()
            self._after_commit.clear()
            committed = [False]
            phase = "begin"
            # BEGIN and COMMIT are awaited directly. aiosqlite's thread runs a queued statement even if
            # the task awaiting it is cancelled, so a cancelled BEGIN would leave the shared writer in a
            # transaction for ever ("cannot start a transaction within a transaction") and a cancelled
            # COMMIT would skip the fan-out: the except branch therefore first waits until the thread
            # has run whatever this task stopped waiting for (``_recover``), and only then reads the
            # state. (Each of them in a task of its own, ``shared.tasks.finish``, would cost a few
            # turns of the event loop inside the lock on every transaction: under load that was most
            # of the time the lock was held — issue 5.)
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                phase = "body"
                yield self.conn
                phase = "commit"
                await self.conn.execute("COMMIT")
                committed[0] = True
            except BaseException as exc:
                await finish(self._recover(phase == "commit" and isinstance(exc, asyncio.CancelledError), committed))
                raise
            finally:
                # Still under the lock: callbacks (event fan-out, cache updates) run in commit order.
                callbacks, self._after_commit = self._after_commit, []
                if committed[0]:
                    for callback in callbacks:
                        try:
                            callback()
                        except Exception:
                            log.exception("after-commit callback failed", extra={"txn": name})
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > SLOW_TRANSACTION_MS:
                    log.warning("slow transaction", extra={"txn": name, "ms": round(elapsed, 1)})

    async def _recover(self, commit_unseen: bool, committed: list[bool]) -> None:
        """After a failure inside ``transaction()``: roll back, once every statement already queued ran.

        The writer's thread runs statements in order, so once a marker statement has run, so has a
        BEGIN or COMMIT whose caller was cancelled while waiting. ``commit_unseen``: the task was
        cancelled while COMMIT ran, which therefore may well have committed (then ``committed[0]``
        becomes True, so the fan-out still happens).
        """
        await self.conn.execute_fetchall("SELECT 1")
        if commit_unseen and not self.conn.in_transaction:
            committed[0] = True
        if self.conn.in_transaction:
            await self.conn.execute("ROLLBACK")

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
# have already returned (a login could not see the session it had just written). One job is also one
# round trip to the thread where execute()+fetchone()+close() are three, which adds up inside the
# single writer's transaction.

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


# --- migrations ------------------------------------------------------------------------------------
# Files are ``<package>/NNNN_name.sql``, applied in order at start-up, each in its own transaction and
# recorded in ``schema_migrations``. A merged file is never edited; a change is a new file.

def available_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file in ``package``, sorted by version.

    Args:
        package: the dotted name of the package holding the ``.sql`` files.

    Raises:
        RuntimeError: two files carry the same version number.
    """
    found = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("duplicate migration version")
    return found


async def apply_migrations(conn: aiosqlite.Connection, package: str) -> list[int]:
    """Apply every migration of ``package`` not yet recorded.

    Args:
        conn: a connection in autocommit mode (``isolation_level=None``), e.g. ``Database.conn``.
        package: the dotted name of the package holding the ``.sql`` files.

    Returns:
        The versions applied, in order (empty when the database is up to date).
    """
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    async with conn.execute("SELECT version FROM schema_migrations") as cur:
        done = {row[0] for row in await cur.fetchall()}
    applied = []
    for version, name, sql in available_migrations(package):
        if version in done:
            continue
        # executescript() would COMMIT implicitly; run statements inside our own transaction.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in split_sql(sql):
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                (version, name, now_iso()),
            )
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        log.info("applied migration", extra={"version": version, "migration": name})
        applied.append(version)
    return applied


def split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping ``CREATE TRIGGER … BEGIN … END;`` whole.

    Raises:
        RuntimeError: the script ends inside a statement.
    """
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        if not current and (not line.strip() or line.lstrip().startswith("--")):
            continue
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise RuntimeError("incomplete SQL statement at end of migration")
    return statements
