"""一斉送信 (broadcasts) with per-recipient tracking, cross-organisation grants, and 確認必須 on messages."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Broadcast:
    id: int
    org_id: int
    sender_id: int
    sender_affiliation: str
    title: str
    body: str
    important: bool
    ack_required: bool
    target: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class Tally:
    org_id: int
    department_id: int | None
    recipients: int
    delivered: int
    read: int
    acked: int


def _broadcast(row: aiosqlite.Row) -> Broadcast:
    v = tuple(row)
    return Broadcast(v[0], v[1], v[2], v[3], v[4], v[5], bool(v[6]), bool(v[7]), json.loads(v[8]), v[9])


async def insert_broadcast(conn: Writer, *, org_id: int, sender_id: int, sender_affiliation: str,
                           title: str, body: str, important: bool, ack_required: bool, target: dict[str, Any],
                           now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO broadcasts(org_id, sender_id, sender_affiliation, title, body, important, ack_required, target,"
        " created_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (org_id, sender_id, sender_affiliation, title, body, int(important), int(ack_required),
         json.dumps(target, ensure_ascii=False), now))
    return int(cur.lastrowid or 0)


async def insert_recipients(conn: Writer, broadcast_id: int,
                            recipients: list[tuple[int, int, int | None]]) -> None:
    await conn.executemany("INSERT OR IGNORE INTO broadcast_recipients(broadcast_id, staff_id, org_id, department_id)"
                           " VALUES (?,?,?,?)", [(broadcast_id, s, o, d) for s, o, d in recipients])


async def get_broadcast(db: Source, broadcast_id: int) -> Broadcast | None:
    row = await fetchone(db, "SELECT * FROM broadcasts WHERE id = ?", (broadcast_id,))
    return _broadcast(row) if row else None


async def recipient_state(db: Source, broadcast_id: int, staff_id: int) -> aiosqlite.Row | None:
    return await fetchone(db, "SELECT delivered_at, read_at, acked_at FROM broadcast_recipients"
                              " WHERE broadcast_id = ? AND staff_id = ?", (broadcast_id, staff_id))


async def inbox(db: Source, staff_id: int, limit: int) -> list[tuple[Broadcast, aiosqlite.Row]]:
    rows = await fetchall(db, "SELECT b.*, r.delivered_at, r.read_at, r.acked_at FROM broadcast_recipients r"
                              " JOIN broadcasts b ON b.id = r.broadcast_id WHERE r.staff_id = ?"
                              " ORDER BY b.id DESC LIMIT ?", (staff_id, limit))
    return [(_broadcast(r), r) for r in rows]


async def sent_by(db: Source, staff_id: int, limit: int) -> list[Broadcast]:
    rows = await fetchall(db, "SELECT * FROM broadcasts WHERE sender_id = ? ORDER BY id DESC LIMIT ?", (staff_id, limit))
    return [_broadcast(r) for r in rows]


async def set_delivered(conn: Writer, broadcast_id: int, staff_ids: list[int], now: str) -> None:
    await conn.executemany("UPDATE broadcast_recipients SET delivered_at = ? WHERE broadcast_id = ? AND staff_id = ?"
                           " AND delivered_at IS NULL", [(now, broadcast_id, s) for s in staff_ids])


async def set_delivered_for_staff(conn: Writer, staff_id: int, now: str) -> None:
    await conn.execute("UPDATE broadcast_recipients SET delivered_at = ? WHERE staff_id = ? AND delivered_at IS NULL",
                       (now, staff_id))


async def set_read(conn: Writer, broadcast_id: int, staff_id: int, now: str, ack: bool) -> bool:
    cur = await conn.execute(
        "UPDATE broadcast_recipients SET delivered_at = COALESCE(delivered_at, ?), read_at = COALESCE(read_at, ?)"
        + (", acked_at = COALESCE(acked_at, ?)" if ack else "") + " WHERE broadcast_id = ? AND staff_id = ?",
        (now, now, now, broadcast_id, staff_id) if ack else (now, now, broadcast_id, staff_id))
    return cur.rowcount == 1


async def tally(db: Source, broadcast_id: int) -> list[Tally]:
    rows = await fetchall(db, "SELECT org_id, department_id, count(*), count(delivered_at), count(read_at),"
                              " count(acked_at) FROM broadcast_recipients WHERE broadcast_id = ?"
                              " GROUP BY org_id, department_id ORDER BY org_id, department_id", (broadcast_id,))
    return [Tally(*tuple(r)) for r in rows]


async def pending(db: Source, broadcast_id: int, column: str) -> list[int]:
    assert column in ("read_at", "acked_at")
    rows = await fetchall(db, f"SELECT staff_id FROM broadcast_recipients WHERE broadcast_id = ? AND {column} IS NULL"
                              " ORDER BY staff_id", (broadcast_id,))
    return [int(r[0]) for r in rows]


async def mark_reminded(conn: Writer, broadcast_id: int, staff_ids: list[int], now: str) -> None:
    await conn.executemany("UPDATE broadcast_recipients SET reminded_at = ? WHERE broadcast_id = ? AND staff_id = ?",
                           [(now, broadcast_id, s) for s in staff_ids])


async def grant(conn: Writer, target_org_id: int, source_org_id: int, by: int, now: str) -> None:
    await conn.execute("INSERT OR IGNORE INTO broadcast_grants(target_org_id, source_org_id, granted_by, granted_at)"
                       " VALUES (?,?,?,?)", (target_org_id, source_org_id, by, now))


async def revoke(conn: Writer, target_org_id: int, source_org_id: int) -> None:
    await conn.execute("DELETE FROM broadcast_grants WHERE target_org_id = ? AND source_org_id = ?",
                       (target_org_id, source_org_id))


async def granted_targets(db: Source, source_org_id: int) -> list[int]:
    rows = await fetchall(db, "SELECT target_org_id FROM broadcast_grants WHERE source_org_id = ?", (source_org_id,))
    return [int(r[0]) for r in rows]


# --- 確認必須 on room messages -----------------------------------------------------------------------

async def request_ack(conn: Writer, message_id: int, by: int, now: str) -> bool:
    cur = await conn.execute("INSERT OR IGNORE INTO ack_requests(message_id, requested_by, requested_at)"
                             " VALUES (?,?,?)", (message_id, by, now))
    return cur.rowcount == 1


async def ack_requested(db: Source, message_id: int) -> bool:
    return await fetchone(db, "SELECT 1 FROM ack_requests WHERE message_id = ?", (message_id,)) is not None


async def add_ack(conn: Writer, message_id: int, staff_id: int, now: str) -> bool:
    cur = await conn.execute("INSERT OR IGNORE INTO message_acks(message_id, staff_id, acked_at) VALUES (?,?,?)",
                             (message_id, staff_id, now))
    return cur.rowcount == 1


async def acked_ids(db: Source, message_id: int) -> set[int]:
    rows = await fetchall(db, "SELECT staff_id FROM message_acks WHERE message_id = ?", (message_id,))
    return {int(r[0]) for r in rows}
