"""Numbered, forward-only migrations: an empty database reaches the schema, and a second run applies nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
from lgwan_harness import ServerProcess

from lgwan_server.storage.migrate import apply_migrations, available_migrations


def schema(db: Path) -> set[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"
                            " AND name != 'schema_migrations'").fetchall()
    finally:
        conn.close()
    return {(t, n, " ".join((s or "").split())) for t, n, s in rows}


def reference_schema(tmp_path: Path) -> set[tuple[str, str, str]]:
    """What the migration files say, executed directly by sqlite3 in order."""
    ref = tmp_path / "reference.sqlite3"
    conn = sqlite3.connect(ref)
    try:
        for _, _, sql in available_migrations():
            conn.executescript(sql)
    finally:
        conn.close()
    return schema(ref)


def test_files_are_numbered_without_duplicates() -> None:
    found = available_migrations()
    versions = [v for v, _, _ in found]
    assert versions == sorted(versions) and len(set(versions)) == len(versions) and versions[0] == 1
    files = sorted(p.name for p in (Path(__file__).resolve().parents[2] / "lgwan_server" / "storage" / "migrations")
                   .glob("*.sql"))
    assert len(files) == len(found), "every .sql file must match NNNN_name.sql"


async def test_empty_database_reaches_schema_and_second_run_is_a_no_op(tmp_path: Path) -> None:
    db = tmp_path / "fresh.sqlite3"
    expected_versions = [v for v, _, _ in available_migrations()]
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn) == expected_versions
    conn1 = sqlite3.connect(db)
    applied_first = conn1.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall()
    conn1.close()
    assert [r[0] for r in applied_first] == expected_versions
    assert schema(db) == reference_schema(tmp_path)
    async with aiosqlite.connect(db, isolation_level=None) as conn:
        assert await apply_migrations(conn) == []
    conn2 = sqlite3.connect(db)
    try:
        assert conn2.execute("SELECT version, name, applied_at FROM schema_migrations").fetchall() == applied_first
        assert conn2.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn2.close()


def test_cli_migrate_twice(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "cli")
    first = server.cli("migrate")
    assert first.returncode == 0, first.stderr
    applied = [line for line in first.stderr.splitlines() if "applied migration" in line]
    assert len(applied) == len(available_migrations())
    before = server.query("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    second = server.cli("migrate")
    assert second.returncode == 0, second.stderr
    assert "applied migration" not in second.stderr
    assert server.query("SELECT version, applied_at FROM schema_migrations ORDER BY version") == before
    assert schema(server.db_path) == reference_schema(tmp_path)


def test_audit_log_refuses_update_and_delete(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "cli")
    assert server.cli("migrate").returncode == 0
    with server.db_rw() as conn:
        conn.execute("INSERT INTO audit_log(at, action, prev_hash, hash) VALUES ('t', 'x', 'p', 'h')")
        for sql in ("UPDATE audit_log SET action = 'y'", "DELETE FROM audit_log"):
            try:
                conn.execute(sql)
            except sqlite3.DatabaseError as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{sql} was allowed")
