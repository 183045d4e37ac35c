"""The event log that WebSocket clients resume from."""

from __future__ import annotations

from dataclasses import dataclass

from shared.sqlite import Writer

from .database import Source, fetchall, fetchval


@dataclass(frozen=True)
class Event:
    id: int
    room_id: int | None
    staff_id: int | None
    type: str
    payload: str


async def insert_event(conn: Writer, room_id: int | None, staff_id: int | None, type_: str,
                       payload: str, now: str) -> int:
    cur = await conn.execute("INSERT INTO events(room_id, staff_id, type, payload, created_at) VALUES (?,?,?,?,?)",
                             (room_id, staff_id, type_, payload, now))
    return int(cur.lastrowid or 0)


async def insert_audience_event(conn: Writer, staff_ids: list[int], type_: str, payload: str,
                                now: str) -> int:
    """One event for many recipients: the row once, the recipients in ``event_recipients``."""
    event_id = await insert_event(conn, None, None, type_, payload, now)
    await conn.executemany("INSERT OR IGNORE INTO event_recipients(staff_id, event_id) VALUES (?,?)",
                           [(staff_id, event_id) for staff_id in staff_ids])
    return event_id


async def events_since(db: Source, since: int, room_ids: list[int], staff_id: int, limit: int) -> list[Event]:
    """Events after ``since`` visible to a member of ``room_ids``, addressed to ``staff_id``, or with
    ``staff_id`` among their recipients; in id order."""
    marks = ",".join("?" * len(room_ids)) or "NULL"
    rows = await fetchall(
        db, "SELECT id, room_id, staff_id, type, payload FROM events WHERE id > ? AND"
            f" ((room_id IN ({marks}) AND staff_id IS NULL) OR staff_id = ?"
            "  OR id IN (SELECT event_id FROM event_recipients WHERE staff_id = ? AND event_id > ?))"
            " ORDER BY id LIMIT ?",
        [since, *room_ids, staff_id, staff_id, since, limit])
    return [Event(*tuple(r)) for r in rows]


async def oldest_event_id(db: Source) -> int:
    return int(await fetchval(db, "SELECT COALESCE(min(id), 0) FROM events") or 0)


async def latest_event_id(db: Source) -> int:
    return int(await fetchval(db, "SELECT COALESCE(max(id), 0) FROM events") or 0)


async def prune_events(conn: Writer, before: str) -> int:
    cur = await conn.execute("DELETE FROM events WHERE created_at < ?", (before,))
    return cur.rowcount
