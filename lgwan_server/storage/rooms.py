"""Rooms, memberships (with read cursors) and cross-organisation approvals."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone, fetchval


@dataclass(frozen=True)
class Room:
    id: int
    org_id: int
    kind: str
    name: str
    topic: str
    department_id: int | None
    rank_id: int | None
    crossing_policy: str
    last_seq: int
    archived: bool


@dataclass(frozen=True)
class Membership:
    room_id: int
    staff_id: int
    role: str
    auto: bool
    last_read_seq: int


@dataclass(frozen=True)
class RoomSummary:
    """A room as seen in its member's sidebar."""

    room: Room
    role: str
    last_read_seq: int
    unread: int
    unread_mentions: int
    member_count: int


_ROOM_COLS = "id, org_id, kind, name, topic, department_id, rank_id, crossing_policy, last_seq, archived"


def _room(row: aiosqlite.Row, offset: int = 0) -> Room:
    v = [row[offset + i] for i in range(10)]
    return Room(v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], bool(v[9]))


async def insert_room(conn: Writer, *, org_id: int, kind: str, name: str, topic: str,
                      department_id: int | None, rank_id: int | None, dm_key: str | None, crossing_policy: str,
                      created_by: int | None, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO rooms(org_id, kind, name, topic, department_id, rank_id, dm_key, crossing_policy, created_by,"
        " created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (org_id, kind, name, topic, department_id, rank_id, dm_key, crossing_policy, created_by, now))
    return int(cur.lastrowid or 0)


async def get_room(db: Source, room_id: int) -> Room | None:
    row = await fetchone(db, f"SELECT {_ROOM_COLS} FROM rooms WHERE id = ?", (room_id,))
    return _room(row) if row else None


async def get_room_by_dm_key(conn: Writer, dm_key: str) -> Room | None:
    row = await fetchone(conn, f"SELECT {_ROOM_COLS} FROM rooms WHERE dm_key = ?", (dm_key,))
    return _room(row) if row else None


async def get_generated_room(conn: Writer, org_id: int, kind: str, department_id: int | None,
                             rank_id: int | None) -> Room | None:
    column, value = ("department_id", department_id) if kind == "department" else ("rank_id", rank_id)
    row = await fetchone(conn, f"SELECT {_ROOM_COLS} FROM rooms WHERE org_id = ? AND kind = ? AND {column} = ?",
                            (org_id, kind, value))
    return _room(row) if row else None


async def update_room(conn: Writer, room_id: int, *, name: str | None = None, topic: str | None = None,
                      crossing_policy: str | None = None, archived: bool | None = None) -> None:
    for column, value in (("name", name), ("topic", topic), ("crossing_policy", crossing_policy),
                          ("archived", None if archived is None else int(archived))):
        if value is not None:
            await conn.execute(f"UPDATE rooms SET {column} = ? WHERE id = ?", (value, room_id))  # noqa: S608


async def next_seq(conn: Writer, room_id: int) -> int:
    """Allocate the room's next message seq (inside the writer's transaction)."""
    row = await fetchone(conn, "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
                            (room_id,))
    assert row is not None
    return int(row[0])


async def get_membership(db: Source, room_id: int, staff_id: int) -> Membership | None:
    row = await fetchone(db, "SELECT room_id, staff_id, role, auto, last_read_seq FROM room_members"
                             " WHERE room_id = ? AND staff_id = ?", (room_id, staff_id))
    return Membership(row[0], row[1], row[2], bool(row[3]), row[4]) if row else None


async def insert_member(conn: Writer, room_id: int, staff_id: int, role: str, auto: bool,
                        last_read_seq: int, now: str) -> bool:
    """Add a member; returns False when already a member."""
    cur = await conn.execute(
        "INSERT OR IGNORE INTO room_members(room_id, staff_id, role, auto, last_read_seq, joined_at)"
        " VALUES (?,?,?,?,?,?)", (room_id, staff_id, role, int(auto), last_read_seq, now))
    return cur.rowcount == 1


async def delete_member(conn: Writer, room_id: int, staff_id: int) -> bool:
    cur = await conn.execute("DELETE FROM room_members WHERE room_id = ? AND staff_id = ?", (room_id, staff_id))
    return cur.rowcount == 1


async def update_member_role(conn: Writer, room_id: int, staff_id: int, role: str) -> None:
    await conn.execute("UPDATE room_members SET role = ? WHERE room_id = ? AND staff_id = ?", (role, room_id, staff_id))


async def count_owners(conn: Writer, room_id: int) -> int:
    row = await fetchone(conn, "SELECT count(*) FROM room_members WHERE room_id = ? AND role = 'owner'", (room_id,))
    return int(row[0]) if row else 0


async def list_member_ids(db: Source, room_id: int) -> list[int]:
    return [r[0] for r in await fetchall(db, "SELECT staff_id FROM room_members WHERE room_id = ?", (room_id,))]


async def list_auto_member_ids(conn: Writer, room_id: int) -> list[int]:
    return [r[0] for r in await fetchall(conn, "SELECT staff_id FROM room_members WHERE room_id = ? AND auto = 1", (room_id,))]


async def list_members(db: Source, room_id: int, limit: int, offset: int) -> list[Membership]:
    rows = await fetchall(db,
        "SELECT m.room_id, m.staff_id, m.role, m.auto, m.last_read_seq FROM room_members m"
        " JOIN staff s ON s.id = m.staff_id WHERE m.room_id = ? ORDER BY s.kana, s.id LIMIT ? OFFSET ?",
        (room_id, limit, offset))
    return [Membership(r[0], r[1], r[2], bool(r[3]), r[4]) for r in rows]


async def count_members(db: Source, room_id: int) -> int:
    return int(await fetchval(db, "SELECT count(*) FROM room_members WHERE room_id = ?", (room_id,)) or 0)


async def room_ids_of_staff(db: Source, staff_id: int) -> list[int]:
    return [r[0] for r in await fetchall(db, "SELECT room_id FROM room_members WHERE staff_id = ?", (staff_id,))]


async def list_room_summaries(db: Source, staff_id: int) -> list[RoomSummary]:
    rows = await fetchall(db,
        f"SELECT m.role, m.last_read_seq,"
        "  (SELECT count(*) FROM messages x WHERE x.room_id = r.id AND x.seq > m.last_read_seq"
        "     AND x.sender_id != m.staff_id AND x.deleted_at IS NULL),"
        "  (SELECT count(*) FROM mentions n JOIN messages y ON y.id = n.message_id WHERE n.staff_id = m.staff_id"
        "     AND y.room_id = r.id AND y.seq > m.last_read_seq AND y.deleted_at IS NULL),"
        "  (SELECT count(*) FROM room_members c WHERE c.room_id = r.id),"
        f" {', '.join('r.' + c.strip() for c in _ROOM_COLS.split(','))}"
        " FROM room_members m JOIN rooms r ON r.id = m.room_id WHERE m.staff_id = ? ORDER BY r.kind, r.name, r.id",
        (staff_id,))
    return [RoomSummary(_room(r, 5), r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def advance_cursor(conn: Writer, room_id: int, staff_id: int, seq: int, now: str) -> bool:
    """Move a read cursor forward (never back). Returns True when it moved."""
    cur = await conn.execute(
        "UPDATE room_members SET last_read_seq = ?, last_read_at = ? WHERE room_id = ? AND staff_id = ?"
        " AND last_read_seq < ?", (seq, now, room_id, staff_id, seq))
    return cur.rowcount == 1


async def readers_of(db: Source, room_id: int, seq: int) -> tuple[list[int], list[int]]:
    """(members whose cursor is at or past seq, members whose cursor is before it)."""
    rows = await fetchall(db, "SELECT staff_id, last_read_seq >= ? FROM room_members WHERE room_id = ?", (seq, room_id))
    read = [r[0] for r in rows if r[1]]
    unread = [r[0] for r in rows if not r[1]]
    return read, unread


async def read_count(db: Source, room_id: int, seq: int, sender_id: int) -> int:
    return int(await fetchval(db,
        "SELECT count(*) FROM room_members WHERE room_id = ? AND last_read_seq >= ? AND staff_id != ?",
        (room_id, seq, sender_id)) or 0)


async def read_cursors(db: Source, room_id: int) -> dict[int, int]:
    """Every member's cursor (staff id → last_read_seq), for computing 既読 counts of a page in one pass."""
    return {r[0]: r[1] for r in await fetchall(db, "SELECT staff_id, last_read_seq FROM room_members WHERE room_id = ?",
                                               (room_id,))}


async def approve_org(conn: Writer, room_id: int, org_id: int, approved_by: int, now: str) -> None:
    await conn.execute("INSERT OR IGNORE INTO room_orgs(room_id, org_id, approved_by, approved_at) VALUES (?,?,?,?)",
                       (room_id, org_id, approved_by, now))


async def revoke_org(conn: Writer, room_id: int, org_id: int) -> None:
    await conn.execute("DELETE FROM room_orgs WHERE room_id = ? AND org_id = ?", (room_id, org_id))


async def approved_org_ids(db: Source, room_id: int) -> list[int]:
    return [r[0] for r in await fetchall(db, "SELECT org_id FROM room_orgs WHERE room_id = ?", (room_id,))]


async def generated_rooms(conn: Writer, org_id: int) -> list[Room]:
    return [_room(r) for r in await fetchall(conn, f"SELECT {_ROOM_COLS} FROM rooms WHERE org_id = ? AND kind IN ('department', 'rank')",
                            (org_id,))]
