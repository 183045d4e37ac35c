"""Numbered, forward-only migrations: ``migrations/NNNN_name.sql`` applied in order at start-up.

Each file runs in its own transaction and is recorded in ``schema_migrations`` (the runner is
``shared.sqlite``'s, the relay's too). A merged file is never edited; a change is a new file.
"""

from __future__ import annotations

from shared import sqlite
from shared.sqlite import Writer

MIGRATIONS_PACKAGE = "lgwan_server.storage.migrations"


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, sorted by version."""
    return sqlite.available_migrations(MIGRATIONS_PACKAGE)


async def apply_migrations(conn: Writer) -> list[int]:
    """Apply every migration not yet recorded. Returns the versions applied (empty when up to date)."""
    return await sqlite.apply_migrations(conn, MIGRATIONS_PACKAGE)
