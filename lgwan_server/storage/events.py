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


async def insert_personal_events(conn: aiosqlite.Connection, staff_ids: list[int], type_: str, payload: str,
                                 now: str) -> list[tuple[int, int]]:
    """One event per recipient in a single statement batch; returns (event id, staff id) pairs.

    Inside the writer's transaction AUTOINCREMENT ids are consecutive, so the new rows are exactly
    those above the previous maximum.
    """
    before = int(await fetchval(conn, "SELECT COALESCE(max(id), 0) FROM events") or 0)
    await conn.executemany("INSERT INTO events(room_id, staff_id, type, payload, created_at) VALUES (NULL,?,?,?,?)",
                           [(staff_id, type_, payload, now) for staff_id in staff_ids])
    rows = await fetchall(conn, "SELECT id, staff_id FROM events WHERE id > ? ORDER BY id", (before,))
    return [(int(r[0]), int(r[1])) for r in rows]


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
