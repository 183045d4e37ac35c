"""The LGWAN server's SQLite database: ``shared.sqlite`` with a larger page cache.

The single-writer transaction lock, the after-commit callbacks and the one-job read helpers live in
shared/sqlite.py (the relay uses the same code); this module keeps the names LGWAN code imports.
"""

from __future__ import annotations

from shared import sqlite
from shared.sqlite import Source, fetchall, fetchone, fetchval

__all__ = ["Database", "Source", "fetchall", "fetchone", "fetchval"]


class Database(sqlite.Database):
    """The LGWAN database: one writer connection and a few reader connections (``shared.sqlite``)."""

    # The system of record (every room, message and audit row): a 32 MiB page cache per connection
    # keeps its hot indexes in memory. The relay's small, purged store keeps SQLite's default.
    PRAGMAS = (*sqlite.Database.PRAGMAS, "PRAGMA cache_size=-32768")
