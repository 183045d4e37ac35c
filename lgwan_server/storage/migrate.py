"""Numbered, forward-only migrations: ``migrations/NNNN_name.sql`` applied in order at start-up.

Each file runs in its own transaction and is recorded in ``schema_migrations``. A merged file is
never edited; a change is a new file.
"""

from __future__ import annotations

import logging
import re
from importlib import resources

import aiosqlite

from shared.timeutil import now_iso

log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, sorted by version."""
    found = []
    for entry in resources.files("lgwan_server.storage.migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [v for v, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError("duplicate migration version")
    return found


async def apply_migrations(conn: aiosqlite.Connection) -> list[int]:
    """Apply every migration not yet recorded. Returns the versions applied (empty when up to date)."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    async with conn.execute("SELECT version FROM schema_migrations") as cur:
        done = {row[0] for row in await cur.fetchall()}
    applied = []
    for version, name, sql in available_migrations():
        if version in done:
            continue
        # executescript() would COMMIT implicitly; run statements inside our own transaction.
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(sql):
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


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping ``CREATE TRIGGER … BEGIN … END;`` whole."""
    import sqlite3

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
