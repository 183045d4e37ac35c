"""Polls and surveys in rooms (庁内アンケート), with results by department."""

from __future__ import annotations

import json
from dataclasses import dataclass

import aiosqlite

from shared.sqlite import Writer

from .database import Source, fetchall, fetchone


@dataclass(frozen=True)
class Poll:
    id: int
    room_id: int
    created_by: int
    question: str
    options: tuple[str, ...]
    multiple: bool
    anonymous: bool
    closes_at: str | None
    created_at: str


def _poll(row: aiosqlite.Row) -> Poll:
    v = tuple(row)
    return Poll(v[0], v[1], v[2], v[3], tuple(json.loads(v[4])), bool(v[5]), bool(v[6]), v[7], v[8])


async def insert_poll(conn: Writer, *, room_id: int, created_by: int, question: str, options: list[str],
                      multiple: bool, anonymous: bool, closes_at: str | None, now: str) -> int:
    cur = await conn.execute(
        "INSERT INTO polls(room_id, created_by, question, options, multiple, anonymous, closes_at, created_at)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (room_id, created_by, question, json.dumps(options, ensure_ascii=False), int(multiple), int(anonymous),
         closes_at, now))
    return int(cur.lastrowid or 0)


async def get_poll(db: Source, poll_id: int) -> Poll | None:
    row = await fetchone(db, "SELECT * FROM polls WHERE id = ?", (poll_id,))
    return _poll(row) if row else None


async def room_polls(db: Source, room_id: int) -> list[Poll]:
    return [_poll(r) for r in await fetchall(db, "SELECT * FROM polls WHERE room_id = ? ORDER BY id DESC LIMIT 100",
                                             (room_id,))]


async def replace_votes(conn: Writer, poll_id: int, staff_id: int, options: list[int],
                        department_id: int | None, now: str) -> None:
    await conn.execute("DELETE FROM poll_votes WHERE poll_id = ? AND staff_id = ?", (poll_id, staff_id))
    await conn.executemany("INSERT INTO poll_votes(poll_id, staff_id, option_index, department_id, voted_at)"
                           " VALUES (?,?,?,?,?)", [(poll_id, staff_id, o, department_id, now) for o in options])


async def close_poll(conn: Writer, poll_id: int, now: str) -> None:
    await conn.execute("UPDATE polls SET closes_at = ? WHERE id = ? AND (closes_at IS NULL OR closes_at > ?)",
                       (now, poll_id, now))


async def votes(db: Source, poll_id: int) -> list[tuple[int, int, int | None]]:
    """(staff id, option index, department id) of every vote."""
    rows = await fetchall(db, "SELECT staff_id, option_index, department_id FROM poll_votes WHERE poll_id = ?"
                              " ORDER BY staff_id, option_index", (poll_id,))
    return [(int(r[0]), int(r[1]), r[2]) for r in rows]
