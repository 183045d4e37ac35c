"""The event log that WebSocket clients resume from."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from .database import Source, fetchall, fetchval


@dataclass(frozen=True)
class Event:
    id: int
    room_id: int | None
    staff_id: int | None
    type: str
    payload: str


async def insert_event(conn: aiosqlite.Connection, room_id: int | None, staff_id: int | None, type_: str,
                       payload: str, now: str) -> int:
    cur = await conn.execute("INSERT INTO events(room_id, staff_id, type, payload, created_at) VALUES (?,?,?,?,?)",
                             (room_id, staff_id, type_, payload, now))
    return int(cur.lastrowid or 0)


async def events_since(db: Source, since: int, room_ids: list[int], staff_id: int, limit: int) -> list[Event]:
    """Events after ``since`` visible to a member of ``room_ids`` / addressed to ``staff_id``, in id order."""
    marks = ",".join("?" * len(room_ids)) or "NULL"
    rows = await fetchall(
        db, "SELECT id, room_id, staff_id, type, payload FROM events WHERE id > ? AND"
            f" ((room_id IN ({marks}) AND staff_id IS NULL) OR staff_id = ?) ORDER BY id LIMIT ?",
        [since, *room_ids, staff_id, limit])
    return [Event(*tuple(r)) for r in rows]


async def oldest_event_id(db: Source) -> int:
    return int(await fetchval(db, "SELECT COALESCE(min(id), 0) FROM events") or 0)


async def latest_event_id(db: Source) -> int:
    return int(await fetchval(db, "SELECT COALESCE(max(id), 0) FROM events") or 0)


async def prune_events(conn: aiosqlite.Connection, before: str) -> int:
    cur = await conn.execute("DELETE FROM events WHERE created_at < ?", (before,))
    return cur.rowcount
