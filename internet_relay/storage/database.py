"""One aiosqlite writer with a transaction lock, plus reader connections; numbered migrations.

The same single-writer discipline as the LGWAN server (lgwan_server/storage/database.py), kept as
a small copy because a relay host installs no LGWAN code (pyproject extras, issue 8).
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
from typing import Any, Union

import aiosqlite

from shared.timeutil import now_iso

log = logging.getLogger(__name__)
Source = Union["Database", aiosqlite.Connection]
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
                   "PRAGMA busy_timeout=5000", "PRAGMA temp_store=MEMORY"):
        await conn.execute(pragma)
    return conn


class Database:
    """Writes go through ``transaction()``; reads without a transaction use reader connections."""

    def __init__(self, conn: aiosqlite.Connection, readers: list[aiosqlite.Connection], path: Path) -> None:
        self.conn = conn
        self.path = path
        self._readers = readers
        self._next = 0
        self._lock = asyncio.Lock()
        self._after_commit: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, path: Path, readers: int = 2) -> Database:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        conn = await _connect(path)
        return cls(conn, [await _connect(path) for _ in range(readers)], path)

    async def close(self) -> None:
        for reader in self._readers:
            await reader.close()
        await self.conn.close()

    def reader(self) -> aiosqlite.Connection:
        self._next = (self._next + 1) % len(self._readers)
        return self._readers[self._next]

    @contextlib.asynccontextmanager
    async def transaction(self, name: str) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` under the writer lock; after-commit callbacks run in order."""
        async with self._lock:
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
        if not self._lock.locked():
            raise RuntimeError("after_commit() outside a transaction")
        self._after_commit.append(callback)


def _conn(src: Source) -> aiosqlite.Connection:
    return src.reader() if isinstance(src, Database) else src


# Every aiosqlite call is a round trip to its thread; inside the single writer's transaction those
# add up. execute_fetchall() is one round trip where execute()+fetchone()+close() are three.

async def fetchone(src: Source, sql: str, params: Iterable[Any] = ()) -> aiosqlite.Row | None:
    rows = await _conn(src).execute_fetchall(sql, tuple(params))
    return next(iter(rows), None)


async def fetchall(src: Source, sql: str, params: Iterable[Any] = ()) -> list[aiosqlite.Row]:
    return list(await _conn(src).execute_fetchall(sql, tuple(params)))


async def fetchval(src: Source, sql: str, params: Iterable[Any] = ()) -> Any:
    row = await fetchone(src, sql, params)
    return None if row is None else row[0]


async def apply_migrations(conn: aiosqlite.Connection) -> list[int]:
    """Apply every ``migrations/NNNN_name.sql`` not yet recorded, each in its own transaction."""
    await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                       " name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    async with conn.execute("SELECT version FROM schema_migrations") as cur:
        done = {row[0] for row in await cur.fetchall()}
    found = []
    for entry in resources.files("internet_relay.storage.migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    applied = []
    for version, name, sql in sorted(found):
        if version in done:
            continue
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)",
                               (version, name, now_iso()))
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
        applied.append(version)
    return applied


def _split_sql(script: str) -> list[str]:
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
