"""The relay's audit table: append and read."""
# ruff: noqa: S608 — f-strings here interpolate only module-constant column lists; values are bound "?" parameters.

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    source_ip: str
    action: str
    target: str
    outcome: str
    detail: str
    prev_hash: str
    hash: str


_COLS = "id, at, actor, source_ip, action, target, outcome, detail, prev_hash, hash"


async def last_entry(conn: Writer) -> tuple[int, str] | None:
    row = await fetchone(conn, "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1")
    return (int(row[0]), str(row[1])) if row else None


async def insert_entry(conn: Writer, entry: AuditEntry) -> None:
    await conn.execute(f"INSERT INTO audit({_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", tuple(entry.__dict__.values()))


async def list_entries(db: Source, action_prefix: str | None, limit: int) -> list[AuditEntry]:
    if action_prefix:
        rows = await fetchall(db, f"SELECT {_COLS} FROM audit WHERE action = ? OR action LIKE ? ORDER BY id DESC"
                                  " LIMIT ?", (action_prefix, action_prefix + ".%", limit))
    else:
        rows = await fetchall(db, f"SELECT {_COLS} FROM audit ORDER BY id DESC LIMIT ?", (limit,))
    return [AuditEntry(*tuple(r)) for r in rows]


async def prune(conn: Writer, before: str) -> int:
    # The chain is verified from the oldest remaining entry on (its prev_hash is taken as given).
    cur = await conn.execute("DELETE FROM audit WHERE at < ?", (before,))
    return cur.rowcount
