"""The relay's SQLite database (one writer with a transaction lock, plus readers) and its migrations.

Both are ``shared.sqlite``, the same code as the LGWAN server's. The relay wheel carries that shared
module like every other one the relay imports (deploy/packaging/build_wheels.py follows the imports),
so a relay host still installs no LGWAN code (pyproject extras, issue 8).
"""

from __future__ import annotations

from shared import sqlite
from shared.sqlite import Database, Source, Writer, fetchall, fetchone, fetchval

__all__ = ["Database", "Source", "apply_migrations", "fetchall", "fetchone", "fetchval"]

MIGRATIONS_PACKAGE = "internet_relay.storage.migrations"


async def apply_migrations(conn: Writer) -> list[int]:
    """Apply every ``migrations/NNNN_name.sql`` not yet recorded, each in its own transaction."""
    return await sqlite.apply_migrations(conn, MIGRATIONS_PACKAGE)
