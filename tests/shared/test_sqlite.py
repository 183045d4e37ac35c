"""shared.sqlite: the single-writer Database, the one-job read helpers and the migrations runner.

The tiers' own tests cover their schemas (tests/lgwan_server/test_migrations.py) and everything
that runs through a real server; these pin the behaviour both tiers now share.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from shared.sqlite import (
    Database,
    apply_migrations,
    available_migrations,
    fetchall,
    fetchone,
    fetchval,
    split_sql,
)

TRIGGER = """-- a comment before the first statement
CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);  -- trailing comment
CREATE TABLE log (n INTEGER);

CREATE TRIGGER t_log AFTER INSERT ON t BEGIN
    INSERT INTO log(n) VALUES (new.n);
END;
"""


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "data" / "test.sqlite3")
    await database.conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    yield database
    await database.close()


def migrations_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str]) -> str:
    """A throwaway package holding ``files``, importable for importlib.resources."""
    name = f"kk_test_migrations_{len(sys.modules)}"
    folder = tmp_path / "pkgs" / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    for filename, sql in files.items():
        (folder / filename).write_text(sql, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "pkgs"))
    return name


# --- Database ----------------------------------------------------------------------------------------

async def test_open_creates_a_private_folder_and_sets_the_pragmas(db: Database, tmp_path: Path) -> None:
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    for conn in (db.conn, db.reader(), db.reader()):
        assert (await fetchval(conn, "PRAGMA journal_mode")) == "wal"
        assert (await fetchval(conn, "PRAGMA foreign_keys")) == 1
    for reader in (db.reader(), db.reader()):
        assert (await fetchval(reader, "PRAGMA busy_timeout")) == 5000
    # The writer never blocks the loop on a lock (Writer.begin waits instead) nor checkpoints in a commit.
    assert (await fetchval(db.conn, "PRAGMA busy_timeout")) == 0
    assert (await fetchval(db.conn, "PRAGMA wal_autocheckpoint")) == 0


async def test_a_subclass_adds_pragmas(tmp_path: Path) -> None:
    class Cached(Database):
        PRAGMAS = (*Database.PRAGMAS, "PRAGMA cache_size=-1024")

    database = await Cached.open(tmp_path / "c.sqlite3", readers=1)
    try:
        assert isinstance(database, Cached)
        assert await fetchval(database.conn, "PRAGMA cache_size") == -1024
        assert await database.fetchval("PRAGMA cache_size") == -1024
        assert await fetchval(database.conn, "PRAGMA foreign_keys") == 1
    finally:
        await database.close()


async def test_commit_then_after_commit_callbacks_in_order(db: Database) -> None:
    seen: list[str] = []
    async with db.transaction("insert") as conn:
        await conn.execute("INSERT INTO t(n) VALUES (1)")
        db.after_commit(lambda: seen.append("first"))
        db.after_commit(lambda: seen.append("second"))
        assert seen == []
        assert await fetchval(conn, "SELECT count(*) FROM t") == 1      # the writer sees its own write
    assert seen == ["first", "second"]
    assert await fetchval(db, "SELECT n FROM t") == 1                   # and a reader sees the commit


async def test_rollback_drops_the_writes_and_the_callbacks(db: Database) -> None:
    seen: list[str] = []
    with pytest.raises(ZeroDivisionError):
        async with db.transaction("fails") as conn:
            await conn.execute("INSERT INTO t(n) VALUES (1)")
            db.after_commit(lambda: seen.append("never"))
            1 / 0  # noqa: B018
    async with db.transaction("next"):
        pass
    assert seen == []
    assert await db.fetchval("SELECT count(*) FROM t") == 0


async def test_a_failing_callback_is_logged_and_the_rest_still_run(db: Database,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="shared.sqlite"):
        async with db.transaction("callbacks"):
            db.after_commit(boom)
            db.after_commit(lambda: seen.append("after"))
    assert seen == ["after"]
    assert [r.getMessage() for r in caplog.records] == ["after-commit callback failed"]
    assert caplog.records[0].txn == "callbacks"  # type: ignore[attr-defined]


async def test_after_commit_outside_a_transaction_is_a_bug(db: Database) -> None:
    with pytest.raises(RuntimeError, match="outside a transaction"):
        db.after_commit(lambda: None)


async def test_transactions_do_not_interleave(db: Database) -> None:
    """Two coroutines each read-modify-write across an await; the lock serialises them."""
    async with db.transaction("seed") as conn:
        await conn.execute("INSERT INTO t(id, n) VALUES (1, 0)")

    async def bump() -> None:
        async with db.transaction("bump") as conn:
            n = await fetchval(conn, "SELECT n FROM t WHERE id = 1")
            await asyncio.sleep(0.01)
            await conn.execute("UPDATE t SET n = ? WHERE id = 1", (n + 1,))

    await asyncio.gather(*(bump() for _ in range(5)))
    assert await db.fetchval("SELECT n FROM t WHERE id = 1") == 5


async def test_fetch_helpers(db: Database) -> None:
    async with db.transaction("rows") as conn:
        await conn.executemany("INSERT INTO t(n) VALUES (?)", [(3,), (1,), (2,)])
    rows = await fetchall(db, "SELECT n FROM t ORDER BY n")
    assert [r["n"] for r in rows] == [1, 2, 3]
    row = await fetchone(db, "SELECT n FROM t WHERE n > ? ORDER BY n", (1,))
    assert row is not None and row[0] == 2
    assert await fetchone(db, "SELECT n FROM t WHERE n > 9") is None
    assert await fetchval(db, "SELECT n FROM t WHERE n > 9") is None
    assert await db.fetchall("SELECT n FROM t WHERE n = ?", [3]) == await fetchall(db.reader(), "SELECT n FROM t"
                                                                                     " WHERE n = 3")


# --- migrations --------------------------------------------------------------------------------------

def test_split_sql_keeps_triggers_whole() -> None:
    statements = split_sql(TRIGGER)
    assert len(statements) == 3
    assert statements[2].startswith("CREATE TRIGGER") and statements[2].endswith("END;")
    with pytest.raises(RuntimeError, match="incomplete"):
        split_sql("CREATE TABLE x (a INTEGER);\nCREATE TABLE y (")


async def test_migrations_apply_in_order_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = migrations_package(tmp_path, monkeypatch, {
        "0002_more.sql": "INSERT INTO t(n) VALUES (7);",
        "0001_initial.sql": TRIGGER,
        "README.txt": "not a migration",
        "3_bad_name.sql": "this file is ignored",
    })
    assert [(v, n) for v, n, _ in available_migrations(package)] == [(1, "initial"), (2, "more")]
    path = tmp_path / "m.sqlite3"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        assert await apply_migrations(conn, package) == [1, 2]
        assert await apply_migrations(conn, package) == []
    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT n FROM log").fetchall() == [(7,)]     # the trigger exists and fired
        assert [r[:2] for r in check.execute("SELECT version, name FROM schema_migrations ORDER BY version")] == [
            (1, "initial"), (2, "more")]
    finally:
        check.close()


async def test_a_failing_migration_rolls_back_and_is_not_recorded(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    package = migrations_package(tmp_path, monkeypatch, {
        "0001_initial.sql": "CREATE TABLE a (x INTEGER);",
        "0002_broken.sql": "CREATE TABLE b (x INTEGER);\nINSERT INTO nowhere VALUES (1);",
    })
    path = tmp_path / "m.sqlite3"
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        with pytest.raises(sqlite3.OperationalError):
            await apply_migrations(conn, package)
        tables = {r[0] for r in await conn.execute_fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "a" in tables and "b" not in tables
        assert list(await conn.execute_fetchall("SELECT version FROM schema_migrations")) == [(1,)]


def test_duplicate_versions_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = migrations_package(tmp_path, monkeypatch, {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 2;"})
    with pytest.raises(RuntimeError, match="duplicate migration version"):
        available_migrations(package)


@pytest.mark.parametrize("package", ["lgwan_server.storage.migrations", "internet_relay.storage.migrations"])
async def test_each_tier_schema_builds_from_empty(tmp_path: Path, package: str) -> None:
    database = await Database.open(tmp_path / "tier.sqlite3", readers=1)
    try:
        expected = [v for v, _, _ in available_migrations(package)]
        assert expected and await apply_migrations(database.conn, package) == expected
        assert await apply_migrations(database.conn, package) == []
        assert await database.fetchval("PRAGMA integrity_check") == "ok"
    finally:
        await database.close()


@pytest.mark.parametrize("offload", [False, True])
async def test_cancel_during_begin_or_commit_leaves_the_writer_usable(tmp_path: Path, offload: bool) -> None:
    """A task cancelled at any await inside transaction() must not leave the connection in a transaction."""
    db = await Database.open(tmp_path / "cancel.sqlite3")
    try:
        await db.conn.execute("CREATE TABLE t (v INTEGER)")
        published: list[int] = []
        for attempt in range(40):
            async def write(value: int) -> None:
                async with db.transaction("cancel-test", offload=offload) as conn:
                    await conn.execute("INSERT INTO t(v) VALUES (?)", (value,))
                    db.after_commit(lambda: published.append(value))
            task = asyncio.create_task(write(attempt))
            for _ in range(attempt % 6):          # cancel at a different await each time
                await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            assert not db.conn.in_transaction
            async with db.transaction("after") as conn:   # the writer still works
                await conn.execute("SELECT 1")
        rows = [r[0] for r in await db.fetchall("SELECT v FROM t ORDER BY v")]
        assert rows == sorted(published)              # committed ⇔ fanned out, never one without the other
    finally:
        await db.close()


async def test_cancelled_while_committing_still_fans_out_what_was_committed(tmp_path: Path) -> None:
    """Offloaded, BEGIN and COMMIT are awaited directly (no task each): a task cancelled while its
    COMMIT runs on the writer's thread learns the outcome afterwards, so the fan-out follows the commit."""
    db = await Database.open(tmp_path / "commit.sqlite3")
    try:
        await db.conn.execute("CREATE TABLE t (v INTEGER)")
        published: list[int] = []

        async def write(value: int) -> None:
            async with db.transaction("cancel-at-commit", offload=True) as conn:
                await conn.execute("INSERT INTO t(v) VALUES (?)", (value,))
                db.after_commit(lambda: published.append(value))
                current = asyncio.current_task()
                assert current is not None
                asyncio.get_running_loop().call_soon(current.cancel)    # lands while COMMIT runs

        for value in (1, 2, 3):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.create_task(write(value))
            assert not db.conn.in_transaction
        assert [r[0] for r in await db.fetchall("SELECT v FROM t ORDER BY v")] == published == [1, 2, 3]
    finally:
        await db.close()


async def test_cancelled_while_beginning_leaves_no_transaction_behind(tmp_path: Path) -> None:
    """Offloaded, the cancelled task stops waiting for BEGIN, the writer's thread still runs it: it is
    rolled back."""
    db = await Database.open(tmp_path / "begin.sqlite3")
    try:
        await db.conn.execute("CREATE TABLE t (v INTEGER)")

        async def write() -> None:
            current = asyncio.current_task()
            assert current is not None
            asyncio.get_running_loop().call_soon(current.cancel)        # lands while BEGIN runs
            async with db.transaction("cancel-at-begin", offload=True) as conn:
                await conn.execute("INSERT INTO t(v) VALUES (1)")

        for _ in range(3):
            with pytest.raises(asyncio.CancelledError):
                await asyncio.create_task(write())
            assert not db.conn.in_transaction
            async with db.transaction("after") as conn:                 # the writer still works
                await conn.execute("INSERT INTO t(v) VALUES (2)")
        assert [r[0] for r in await db.fetchall("SELECT v FROM t")] == [2, 2, 2]
    finally:
        await db.close()


# --- where the writer runs ---------------------------------------------------------------------------

def file_size(path: str) -> int:
    return os.path.getsize(path)


class LoopTurns:
    """Counts turns of the event loop while it runs (a task that only yields)."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTurns:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        self.turns = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_transaction_runs_its_statements_without_turning_the_loop(db: Database) -> None:
    """Short statements run on the loop's thread: no other coroutine runs between them, so the
    write lock is held for the statements only (issue 5: each hand-off to a thread cost a loop turn
    with the lock held, and under load those turns were the crossing latency)."""
    async with LoopTurns() as loop:
        async with db.transaction("many") as conn:
            for n in range(200):
                await conn.execute("INSERT INTO t(n) VALUES (?)", (n,))
            assert await fetchval(conn, "SELECT count(*) FROM t") == 200
        assert loop.turns == 0
    assert await db.fetchval("SELECT count(*) FROM t") == 200


async def test_the_inline_reader_sees_commits_at_once_and_cannot_write(db: Database) -> None:
    """``Database.inline`` (point lookups on the request path) runs on the loop's thread too, reads
    only what is committed, and refuses to write."""
    async with LoopTurns() as loop:
        async with db.transaction("one") as conn:
            await conn.execute("INSERT INTO t(n) VALUES (5)")
            assert await fetchval(db.inline, "SELECT count(*) FROM t") == 0     # not the writer's open transaction
        assert await fetchval(db.inline, "SELECT n FROM t") == 5
        assert loop.turns == 0
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await db.inline.execute("INSERT INTO t(n) VALUES (6)")
    assert await db.fetchval("SELECT count(*) FROM t") == 1


async def test_a_slow_inline_read_is_logged(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    """A scan sent to the loop-thread reader by mistake shows in the log with its SQL."""
    scan = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000)"
            " SELECT count(*) FROM c")
    with caplog.at_level(logging.WARNING, logger="shared.sqlite"):
        await fetchval(db.inline, "SELECT count(*) FROM t")
        assert caplog.records == []
        assert await fetchval(db.inline, scan) == 2000000
    assert [r.getMessage() for r in caplog.records] == ["slow inline read"]
    assert caplog.records[0].sql.startswith("WITH RECURSIVE")  # type: ignore[attr-defined]


async def test_an_offloaded_transaction_leaves_the_loop_serving(db: Database) -> None:
    """A long transaction (a purge, a bulk import) runs its statements on the writer's thread."""
    slow = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 400000)"
            " INSERT INTO t(n) SELECT x FROM c")
    async with LoopTurns() as loop:
        async with db.transaction("bulk", offload=True) as conn:
            await conn.execute(slow)
        assert loop.turns > 0
    assert await db.fetchval("SELECT count(*) FROM t") == 400000
    async with LoopTurns() as loop:                       # and the next transaction runs on the loop again
        async with db.transaction("short") as conn:
            await conn.execute("INSERT INTO t(n) VALUES (0)")
        assert loop.turns == 0


async def test_begin_waits_for_another_process_without_blocking_the_loop(db: Database) -> None:
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")                      # e.g. an admin command writing
        other.execute("INSERT INTO t(n) VALUES (7)")
        asyncio.get_running_loop().call_later(0.3, other.execute, "COMMIT")
        async with LoopTurns() as loop:
            async with db.transaction("waits") as conn:
                await conn.execute("INSERT INTO t(n) VALUES (8)")
            assert loop.turns > 0
        assert [r[0] for r in await db.fetchall("SELECT n FROM t ORDER BY id")] == [7, 8]
    finally:
        other.close()


async def test_begin_gives_up_after_the_busy_timeout(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.sqlite.BUSY_TIMEOUT_SECONDS", 0.2)
    other = sqlite3.connect(db.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            async with db.transaction("gives_up") as conn:
                await conn.execute("INSERT INTO t(n) VALUES (1)")
        assert not db.conn.in_transaction
        other.execute("ROLLBACK")
        async with db.transaction("then") as conn:
            await conn.execute("INSERT INTO t(n) VALUES (2)")
        assert await db.fetchval("SELECT count(*) FROM t") == 1
    finally:
        other.close()


async def test_checkpoints_run_in_the_background_and_bound_the_wal(db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The writer's auto-checkpoint is off; its thread checkpoints every CHECKPOINT_EVERY commits, so
    the WAL is reused instead of growing with every commit."""
    monkeypatch.setattr("shared.sqlite.CHECKPOINT_EVERY", 10)
    await db.conn.execute("CREATE TABLE blobs (b BLOB)")
    wal = f"{db.path}-wal"
    for _ in range(400):                                     # 400 × 8 KiB written: 3.2 MiB through the WAL
        async with db.transaction("blob") as conn:
            await conn.execute("INSERT INTO blobs(b) VALUES (zeroblob(8192))")
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    assert file_size(wal) < 1024 * 1024
    assert await db.fetchval("SELECT count(*) FROM blobs") == 400
