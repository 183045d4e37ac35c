"""SQLite for an aiohttp tier: one writer connection under a transaction lock, reader connections,
one-job read helpers and numbered, forward-only migrations.

Nothing may interleave statements of two transactions across ``await``s, so ``transaction()``
holds an ``asyncio.Lock`` for the whole ``BEGIN IMMEDIATE … COMMIT``, the way Datasette funnels
writes through one writer and Synapse names each ``runInteraction``.

Readers are aiosqlite connections: a read may be slow and runs on its connection's thread. The
point lookups on every request's path (a session, a member) read through ``Database.inline``, a
read-only connection on the event loop's thread; the writer (``Writer``) runs there too. A write
transaction here is a handful of short statements on indexed rows (tens of microseconds each, WAL
with ``synchronous=NORMAL``: no fsync at commit); handing each of them to a thread and waiting for
the loop to come round again cost far more than the statement, and the lock was held through every
one of those waits. Under load (issue 5: 200 messages/s each way through the relay) that waiting
was most of the time the lock was held, and the queue behind it was the crossing latency. A
transaction known to be long (a bulk import, a purge, a relay rebuild, a file blob) passes
``offload=True`` and runs its statements on the writer's own thread, so the loop keeps serving
sockets meanwhile. Checkpoints, the one part of a commit that writes the database file and fsyncs,
never run inside a commit: the writer's auto-checkpoint is off and the writer's thread checkpoints
between two transactions every ``CHECKPOINT_EVERY`` commits.

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
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, Self, Union

import aiosqlite

from .tasks import finish
from .timeutil import now_iso

log = logging.getLogger(__name__)

Source = Union["Database", "Inline", aiosqlite.Connection]

SLOW_TRANSACTION_MS = 200
SLOW_INLINE_MS = 20             # an inline (loop-thread) read slower than this is logged
CHECKPOINT_EVERY = 200          # commits between two background WAL checkpoints
BUSY_TIMEOUT_SECONDS = 5.0      # how long BEGIN waits for another process's write lock
_MIGRATION_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class Cursor:
    """What a statement on ``Inline``/``Writer`` returns: the part of a cursor storage code reads (reads
    themselves go through ``execute_fetchall``)."""

    __slots__ = ("_cur",)

    def __init__(self, cur: sqlite3.Cursor) -> None:
        self._cur = cur

    @property
    def lastrowid(self) -> int | None:
        return self._cur.lastrowid

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount


class Inline:
    """A sqlite3 connection driven on the event loop's thread, behind the part of aiosqlite's
    connection API that storage code uses (``execute``, ``executemany``, ``execute_fetchall``), so
    storage functions take it like any other source.

    ``Database.inline`` is one, read-only: for the point lookups on every request's path (a
    session, a member, a room), which take microseconds, where a hand-off to a reader's thread
    and back costs more than the query and contends for the GIL with it. Anything that may scan
    (search, lists, exports) goes to the thread readers (``Database`` itself as the source).
    """

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            # A read that scans does not belong here: it stops every socket while it runs. Say so.
            elapsed = (time.perf_counter() - started) * 1000
            if elapsed > SLOW_INLINE_MS:
                log.warning("slow inline read", extra={"ms": round(elapsed, 1), "sql": str(args[0])[:120]})

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return Cursor(await self._run(self._raw.execute, sql, params))

    async def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Cursor:
        return Cursor(await self._run(self._raw.executemany, sql, params))

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return await self._run(self._fetchall, sql, params)    # type: ignore[no-any-return]

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[sqlite3.Row]:
        cur = self._raw.execute(sql, params)
        try:
            return cur.fetchall()
        finally:
            cur.close()

    async def close(self) -> None:
        self._raw.close()


class Writer(Inline):
    """The single writer: its statements run on the event loop's thread (``Inline``), or on its own
    thread while ``offload`` is set (a long transaction).

    Only ``Database.transaction()`` (under its lock) and start-up code (migrations) use it, so it is
    never used from two threads at once; statements handed to its thread run in order.
    """

    def __init__(self, raw: sqlite3.Connection) -> None:
        super().__init__(raw)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        self.offload = False

    @property
    def in_transaction(self) -> bool:
        return self._raw.in_transaction

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if not self.offload:
            return fn(*args)
        # Shielded: a cancelled caller stops waiting but the statement still runs (an unshielded
        # executor future would drop it if the thread had not started it yet), so what was sent
        # runs in order; Database._recover queues a marker behind it before it reads the state.
        job = asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)
        try:
            return await asyncio.shield(job)
        except asyncio.CancelledError:
            job.add_done_callback(lambda done: done.cancelled() or done.exception())   # seen by _recover
            raise

    async def begin(self) -> None:
        """BEGIN IMMEDIATE, waiting (without blocking the loop) while another process writes."""
        deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
        pause = 0.002
        while True:
            try:
                await self._run(self._raw.execute, "BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.1)

    async def checkpoint(self) -> None:
        """A PASSIVE WAL checkpoint on the writer's thread (outside any transaction)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._fetchall,
                                                         "PRAGMA wal_checkpoint(PASSIVE)", ())

    async def close(self) -> None:
        self._thread.shutdown(wait=True)
        await super().close()


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

    def __init__(self, conn: Writer, readers: list[aiosqlite.Connection], inline: Inline, path: Path) -> None:
        self.conn = conn
        self.inline = inline
        self.path = path
        self._readers = readers
        self._next_reader = 0
        self._write_lock = asyncio.Lock()
        self._after_commit: list[Callable[[], object]] = []
        self._commits = 0
        self._checkpoint: asyncio.Task[None] | None = None

    @classmethod
    def _connect_raw(cls, path: Path, *pragmas: str) -> sqlite3.Connection:
        raw = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        raw.row_factory = sqlite3.Row
        for pragma in (*cls.PRAGMAS, *pragmas):
            raw.execute(pragma)
        return raw

    @classmethod
    def _connect_writer(cls, path: Path) -> Writer:
        # busy_timeout 0: BEGIN must not block the loop (Writer.begin waits for a busy file itself);
        # checkpoints run on the writer's thread between transactions (_run_checkpoint).
        return Writer(cls._connect_raw(path, "PRAGMA busy_timeout=0", "PRAGMA wal_autocheckpoint=0"))

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
        writer = cls._connect_writer(path)
        inline = Inline(cls._connect_raw(path, "PRAGMA query_only=ON"))
        return cls(writer, [await cls._connect(path) for _ in range(readers)], inline, path)

    async def close(self) -> None:
        if self._checkpoint is not None:
            await asyncio.gather(self._checkpoint, return_exceptions=True)
        for reader in self._readers:
            await reader.close()
        await self.inline.close()
        await self.conn.close()     # the last connection to close checkpoints what is left

    def reader(self) -> aiosqlite.Connection:
        """A reader connection, round-robin."""
        self._next_reader = (self._next_reader + 1) % len(self._readers)
        return self._readers[self._next_reader]

    @contextlib.asynccontextmanager
    async def transaction(self, name: str, *, offload: bool = False) -> AsyncIterator[Writer]:
        """Run a write transaction; commit on success, roll back on any exception.

        Args:
            name: what the transaction does, for the logs (slow or failed after-commit callbacks).
            offload: the transaction is long (bulk rows, big blobs): run its statements on the
                writer's thread so the event loop keeps serving meanwhile.
        """
        async with self._write_lock:
            started = time.perf_counter()
            self._after_commit.clear()
            committed = [False]
            phase = "begin"
            self.conn.offload = offload
            try:
                await self.conn.begin()
                phase = "body"
                yield self.conn
                phase = "commit"
                await self.conn.execute("COMMIT")
                committed[0] = True
            except BaseException as exc:
                # Offloaded, a cancelled BEGIN or COMMIT still runs on the writer's thread: _recover
                # waits for it before it reads the state (a COMMIT that ran must still fan out).
                await finish(self._recover(phase == "commit" and isinstance(exc, asyncio.CancelledError), committed))
                raise
            finally:
                self.conn.offload = False
                # Still under the lock: callbacks (event fan-out, cache updates) run in commit order.
                callbacks, self._after_commit = self._after_commit, []
                if committed[0]:
                    for callback in callbacks:
                        try:
                            callback()
                        except Exception:
                            log.exception("after-commit callback failed", extra={"txn": name})
                    self._maybe_checkpoint()
                elapsed = (time.perf_counter() - started) * 1000
                if elapsed > SLOW_TRANSACTION_MS:
                    log.warning("slow transaction", extra={"txn": name, "ms": round(elapsed, 1)})

    def _maybe_checkpoint(self) -> None:
        """Every CHECKPOINT_EVERY commits, copy the WAL into the database file (``_run_checkpoint``)."""
        self._commits += 1
        if self._commits < CHECKPOINT_EVERY or (self._checkpoint is not None and not self._checkpoint.done()):
            return
        self._commits = 0
        self._checkpoint = asyncio.get_running_loop().create_task(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        """Checkpoint on the writer's thread, between two transactions: the loop keeps serving, writers
        wait a few milliseconds, and since nothing is appended meanwhile the checkpoint completes and
        the next transaction starts the WAL over instead of growing it."""
        try:
            async with self._write_lock:
                await self.conn.checkpoint()
        except sqlite3.Error as exc:
            log.warning("wal checkpoint failed", extra={"error": str(exc)[:200]})

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

    def after_commit(self, callback: Callable[[], object]) -> None:
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


def _conn(src: Source) -> aiosqlite.Connection | Inline:
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


async def apply_migrations(conn: aiosqlite.Connection | Writer, package: str) -> list[int]:
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
    done = {row[0] for row in await conn.execute_fetchall("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in available_migrations(package):
        if version in done:
            continue
        # executescript() would COMMIT implicitly; run statements inside our own transaction.
        if isinstance(conn, Writer):
            await conn.begin()      # busy_timeout 0 on the writer: wait here for another process's lock
        else:
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
